// spineparse merge: the shard records of a sharded run combined into one run.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "spineparse/executor.hpp"
#include "spineparse/files.hpp"
#include "spineparse/merge.hpp"
#include "spineparse/registry.hpp"

namespace spineparse::tools::cli {
namespace fs = std::filesystem;

namespace {

// The failed cases of a merged record, as run prints them.
void print_failures(const std::string& run_json) {
  const auto j = nlohmann::json::parse(read_file(run_json));
  for (const auto& c : j["cases"])
    if (c.value("status", "") == "failed")
      std::printf("%-14s failed  [%s] %s\n", c.value("id", "").c_str(),
                  c["error"].value("node", "").c_str(), c["error"].value("message", "").c_str());
}

}  // namespace

void add_merge(CLI::App& app) {
  auto output = std::make_shared<std::string>();
  auto dirs = std::make_shared<std::vector<std::string>>();
  auto* sub = app.add_subcommand(
      "merge",
      "Combine the shard records of a sharded run (OUTPUT/shards/) into OUTPUT/run.json, the "
      "metrics and the report; exit 0 all ok, 1 some cases failed, 2 shards or cases missing");
  sub->add_option("output", *output, "the shards' shared output folder")->required();
  sub->add_option("--plugin-dir", *dirs, "extra folder to load plugins from (repeatable)");
  sub->callback([output, dirs] {
    Registry registry;
    if (!load_default_plugins(registry, *dirs)) return set_exit_code(2);
    MergeReport m;
    try {
      m = merge_shards(*output, registry);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return set_exit_code(2);
    }
    if (!m.merged()) {
      std::fprintf(stderr, "cannot merge %s (nothing written):\n", output->c_str());
      for (const auto& p : m.problems) std::fprintf(stderr, "  %s\n", p.c_str());
      return set_exit_code(2);
    }
    for (const auto& e : m.run_errors) std::fprintf(stderr, "error: %s\n", e.c_str());
    print_failures(m.run_json_path);
    std::printf("\nmerged %d shards: %d ok, %d failed, %d skipped of %zu cases\nrecord: %s\n",
                m.shards, m.ok, m.failed, m.skipped, m.cases, m.run_json_path.c_str());
    print_run_products(*output);
    set_exit_code(m.failed > 0 || !m.run_errors.empty() ? 1 : 0);
  });
}

}  // namespace spineparse::tools::cli
