#include "spineparse/stage_harness.hpp"

#include <stdexcept>

namespace spineparse {

StageHarness::StageHarness(const Registry& registry, const std::string& kind,
                           const std::vector<std::string>& sets, StageContext context)
    : context_(std::move(context)) {
  const StageDescription* d = registry.find(kind);
  if (!d) throw std::invalid_argument("unknown stage kind '" + kind + "'");
  std::vector<ConfigIssue> issues;
  params_ = resolve_params(*d, sets, &issues);
  if (!issues.empty()) {
    std::string all;
    for (const auto& i : issues) all += (all.empty() ? "" : "; ") + i.message;
    throw std::invalid_argument(all);
  }
  consumes_ = d->consumes;
  if (context_.node_id.empty()) context_.node_id = kind;
  stage_ = registry.create(kind, params_);
  stage_->open(context_);
}

StageHarness::~StageHarness() {
  try {
    if (stage_) stage_->close();
  } catch (...) {
  }
}

CasePtr StageHarness::make_case(const std::string& id,
                                const std::map<std::string, NdArrayPtr>& fields,
                                const Geometry& geometry) {
  auto c = std::make_shared<Case>(id, 0);
  for (const auto& [name, value] : fields) c->set(name, value);
  c->set_geometry(geometry);
  return c;
}

}  // namespace spineparse
