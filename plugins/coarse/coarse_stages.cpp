#include "coarse_stages.hpp"

#include "gcsn_stage.hpp"
#include "network_options.hpp"
#include "preprocess.hpp"
#include "spineparse/registry.hpp"

namespace spineparse {

void register_coarse_stages(Registry& r) {
  r.add_stage<plugins::coarse::Preprocess>(plugins::coarse::preprocess_description());
  r.add_stage<plugins::coarse::GcsnStage>(plugins::coarse::gcsn_description(),
                                          plugins::network::network_attributes());
}

}  // namespace spineparse
