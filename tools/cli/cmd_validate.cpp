// spineparse validate: a graph checked as run would check it, without running.
#include <cstdio>

#include "commands.hpp"
#include "spineparse/graph.hpp"
#include "spineparse/registry.hpp"

namespace spineparse::tools::cli {

void add_validate(CLI::App& app) {
  auto a = std::make_shared<GraphArgs>();
  auto* sub =
      app.add_subcommand("validate", "Check a graph file; report every problem (exit 2 if any)");
  add_graph_args(sub, *a);
  sub->callback([a] {
    Registry registry;
    auto graph = load_graph_args(*a, registry);
    if (!graph) return set_exit_code(2);
    std::printf("%s: valid (%zu nodes, source '%s', max_in_flight %d)\n", a->graph.c_str(),
                graph->nodes.size(), graph->source_id.c_str(), graph->max_in_flight);
    set_exit_code(0);
  });
}

}  // namespace spineparse::tools::cli
