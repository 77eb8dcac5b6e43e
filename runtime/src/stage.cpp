// The stage interface's defaults, out of line so that their code and StopRun's type information
// live once, in the runtime, for every plugin.
#include "spineparse/stage.hpp"

#include <stdexcept>

namespace spineparse {

Stage::~Stage() = default;
StopRun::~StopRun() = default;
void Stage::open(const StageContext&) {}
void Stage::close() {}
std::vector<CaseSeed> Stage::enumerate(const StageContext& ctx) {
  throw std::logic_error("stage of node '" + ctx.node_id + "' is not a source");
}
void Stage::after_run(const std::string&, const StageContext&) {}
std::vector<std::string> Stage::outputs_for(const CaseSeed&, const StageContext&) const {
  return {};
}

}  // namespace spineparse
