#include "coarse_stages.hpp"

#include "gcsn_stage.hpp"
#include "preprocess.hpp"
#include "spineparse/registry.hpp"

namespace spineparse {

void register_coarse_stages(Registry& r) {
  r.add_stage(coarse::preprocess_description(),
              [](const Params& p) { return std::make_unique<coarse::Preprocess>(p); });
  r.add_stage(coarse::gcsn_description(),
              [](const Params& p) { return std::make_unique<coarse::GcsnStage>(p); });
}

}  // namespace spineparse
