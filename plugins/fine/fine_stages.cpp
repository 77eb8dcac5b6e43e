#include "fine_stages.hpp"

#include "prepare.hpp"
#include "resunet_stage.hpp"
#include "spineparse/registry.hpp"
#include "to_raw.hpp"

namespace spineparse {

void register_fine_stages(Registry& r) {
  r.add_stage<plugins::fine::Prepare>(plugins::fine::prepare_description());
  r.add_stage<plugins::fine::ResUNetStage>(plugins::fine::resunet_description(),
                                            plugins::fine::resunet_attributes());
  r.add_stage<plugins::fine::ToRaw>(plugins::fine::to_raw_description());
}

}  // namespace spineparse
