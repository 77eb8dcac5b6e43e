// The plugin's one entry point: its name, version and the stage kinds it registers.
#include "label_volumes.hpp"
#include "spineparse/plugin_api.hpp"
#include "spineparse/registry.hpp"

namespace {
void register_example_stages(spineparse::Registry& r) {
  r.add_stage<example::LabelVolumes>(example::label_volumes_description());
}
}  // namespace

SPINEPARSE_PLUGIN("example", "1.0.0", register_example_stages)
