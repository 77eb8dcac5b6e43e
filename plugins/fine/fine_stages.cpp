#include "fine_stages.hpp"

#include "prepare.hpp"
#include "resunet_stage.hpp"
#include "spineparse/registry.hpp"
#include "to_raw.hpp"

namespace spineparse {

void register_fine_stages(Registry& r) {
  r.add_stage(fine::prepare_description(),
              [](const Params& p) { return std::make_unique<fine::Prepare>(p); });
  r.add_stage(fine::resunet_description(),
              [](const Params& p) { return std::make_unique<fine::ResUNetStage>(p); });
  r.add_stage(fine::to_raw_description(),
              [](const Params& p) { return std::make_unique<fine::ToRaw>(p); });
}

}  // namespace spineparse
