#include "coarse_stages.hpp"

#include "gcsn_stage.hpp"
#include "preprocess.hpp"
#include "spineparse/registry.hpp"

namespace spineparse {

void register_coarse_stages(Registry& r) {
  r.add_stage<coarse::Preprocess>(coarse::preprocess_description());
  r.add_stage<coarse::GcsnStage>(coarse::gcsn_description());
}

}  // namespace spineparse
