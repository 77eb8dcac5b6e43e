// A stage harness: runs a validated linear graph file case by case without TBB, returning the final
// case records (with every field), so tests can look at what stages produced. Relative paths in
// the graph resolve against its folder, as in `spineparse run`.
#pragma once

#include <gtest/gtest.h>

#include "spineparse/graph.hpp"
#include "spineparse/registry.hpp"

namespace spineparse::testing {

inline std::vector<CasePtr> run_chain(Registry& registry, const std::string& graph_path,
                                      const std::string& input_dir,
                                      const std::vector<std::string>& sets = {},
                                      const std::string& output_dir = "") {
  auto g = load_graph_file(graph_path, registry, sets);
  if (!g.ok()) {
    std::string all;
    for (const auto& i : g.issues) all += i.to_string() + "\n";
    ADD_FAILURE() << all;
    return {};
  }
  std::vector<std::unique_ptr<Stage>> stages;
  StageContext ctx;
  ctx.input_dir = input_dir;
  ctx.output_dir = output_dir;
  ctx.total_threads = 2;
  for (const auto& n : g.graph->nodes) {
    stages.push_back(registry.create(n.stage, n.params));
    ctx.node_id = n.id;
    stages.back()->open(ctx);
  }
  std::vector<CasePtr> out;
  auto seeds = stages[0]->enumerate(ctx);
  for (std::size_t i = 0; i < seeds.size(); ++i) {
    auto c = std::make_shared<Case>(seeds[i].id, i);
    for (const auto& [k, v] : seeds[i].attrs) c->set_attr(k, v);
    CasePtr cur = c;
    for (auto& s : stages) cur = s->process(cur);
    out.push_back(cur);
  }
  return out;
}

}  // namespace spineparse::testing
