#include "refine_stages.hpp"

#include "anatomy_stage.hpp"
#include "spineparse/registry.hpp"

namespace spineparse {

void register_refine_stages(Registry& r) {
  r.add_stage<plugins::refine::Refine>(plugins::refine::refine_description());
}

}  // namespace spineparse
