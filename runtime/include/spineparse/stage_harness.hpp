// StageHarness: one stage, created by its registered kind and driven without a graph or TBB, for
// unit tests of stages (ours and plugin authors'). Parameters are resolved as a graph node's
// (typed "PARAM=VALUE" strings, then defaults); process() applies the executor's error rules
// (call_stage): an exception becomes a failed case naming the node, a failed case passes
// through. close() runs when the harness goes away.
//
//   Registry r;  register_my_stages(r);             // or r.load_plugin("spineparse_my.so")
//   StageHarness h(r, "my.threshold", {"level=0.5"});
//   CasePtr out = h.process(StageHarness::make_case("Case1", {{"image", image}}));
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "spineparse/executor.hpp"
#include "spineparse/graph.hpp"
#include "spineparse/registry.hpp"

namespace spineparse {

class StageHarness {
 public:
  // Throws std::invalid_argument listing every parameter problem, or whatever open() throws.
  StageHarness(const Registry& registry, const std::string& kind,
               const std::vector<std::string>& sets = {}, StageContext context = {});
  ~StageHarness();
  StageHarness(const StageHarness&) = delete;
  StageHarness& operator=(const StageHarness&) = delete;

  CasePtr process(const CasePtr& in) { return call_stage(*stage_, context_.node_id, in, consumes_); }
  Stage& stage() { return *stage_; }
  const Params& params() const { return params_; }

  // A case with the given fields (and geometry), as a source would make it.
  static CasePtr make_case(const std::string& id, const std::map<std::string, NdArrayPtr>& fields,
                           const Geometry& geometry = {});

 private:
  Params params_;
  std::vector<std::string> consumes_;
  StageContext context_;
  std::unique_ptr<Stage> stage_;
};

}  // namespace spineparse
