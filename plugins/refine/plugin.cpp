// Entry point of the refine plugin: anatomical graph refinement of label maps.
#include "refine.hpp"
#include "spineparse/plugin_api.hpp"
#include "spineparse/registry.hpp"

namespace {
void register_refine_stages(spineparse::Registry& r) {
  r.add_stage(spineparse::refine::refine_description(),
              [](const spineparse::Params& p) { return std::make_unique<spineparse::refine::Refine>(p); });
}
}  // namespace

SPINEPARSE_PLUGIN("refine", "0.1.0", register_refine_stages)
