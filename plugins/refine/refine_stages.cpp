#include "refine_stages.hpp"

#include "anatomy_stage.hpp"
#include "spineparse/registry.hpp"

namespace spineparse {

void register_refine_stages(Registry& r) {
  r.add_stage(refine::refine_description(),
              [](const Params& p) { return std::make_unique<refine::Refine>(p); });
}

}  // namespace spineparse
