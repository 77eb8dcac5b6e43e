// spineparse run, and the graph arguments it shares with validate
#include <fmt/core.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "allocator.hpp"
#include "commands.hpp"
#include "plugins/network/network_options.hpp"
#include "spineparse/executor.hpp"
#include "spineparse/files.hpp"
#include "spineparse/graph.hpp"
#include "spineparse/graph_draft.hpp"
#include "spineparse/registry.hpp"

namespace spineparse::tools::cli {
namespace fs = std::filesystem;

void add_graph_args(CLI::App* sub, GraphArgs& a) {
  sub->add_option("graph", a.graph, "graph file (JSON)")->required();
  sub->add_option("--set", a.sets, "override a parameter: NODE.PARAM=VALUE (repeatable)");
  sub->add_option("--plugin-dir", a.plugin_dirs, "extra folder to load plugins from (repeatable)");
}

std::unique_ptr<GraphSpec> load_graph_args(const GraphArgs& a, Registry& registry) {
  bool plugins_ok = load_default_plugins(registry, a.plugin_dirs);
  GraphLoad g;
  try {
    GraphDraft draft = GraphDraft::from_file(a.graph);
    if (!a.device.empty()) {
      // The network options' device parameter, on every stage that declares one.
      using plugins::network::GcsnOptions;
      const auto& device = params_of<GcsnOptions>().name_of(&GcsnOptions::device);
      draft.set_where_declared(registry, device, a.device);
    }
    g = load_graph(draft, registry, a.sets);  // an explicit --set wins
  } catch (const std::exception& e) {
    g.issues.push_back({"unreadable", "", e.what()});
  }
  for (const auto& n : g.notes) std::fprintf(stderr, "%s: note: %s\n", a.graph.c_str(), n.c_str());
  if (!g.ok()) {
    std::fprintf(stderr, "%s: %zu problem%s:\n", a.graph.c_str(), g.issues.size(),
                 g.issues.size() == 1 ? "" : "s");
    for (const auto& i : g.issues) std::fprintf(stderr, "  %s\n", i.to_string().c_str());
    return nullptr;
  }
  if (!plugins_ok) return nullptr;
  return std::make_unique<GraphSpec>(*g.graph);
}

namespace {

void print_summary(const RunReport& r, const Shard& shard) {
  const std::size_t n = r.cases.size();
  std::printf("\n%-14s %-8s %9s  %s\n", "case", "status", "seconds", "detail");
  std::size_t shown = 0;
  for (const auto& c : r.cases) {
    double total = 0;
    for (const auto& t : c.timings) total += t.seconds;
    const bool show = n <= 40 || c.status == "failed";
    if (!show) continue;
    ++shown;
    std::string detail;
    if (c.status == "failed") detail = "[" + c.error_node + "] " + c.error;
    std::printf("%-14s %-8s %9.2f  %s\n", c.id.c_str(), c.status.c_str(), total, detail.c_str());
  }
  if (shown < n) std::printf("(%zu successful cases not listed; see run.json)\n", n - shown);
  const int processed = r.ok + r.failed;
  std::printf(
      "\n%d ok, %d failed, %d skipped%s of %zu cases in %.1f s (%.2f cases/s, %d threads)\n", r.ok,
      r.failed, r.skipped, r.not_run ? (", " + std::to_string(r.not_run) + " not run").c_str() : "",
      n, r.wall_s, r.wall_s > 0 ? processed / r.wall_s : 0.0, r.threads);
  std::printf("record: %s\n", r.run_json_path.c_str());
  if (shard.active()) {
    const fs::path out = fs::path(r.run_json_path).parent_path().parent_path();
    std::printf(
        "shard %d of %d: %zu of the cohort's %zu cases. When every shard is done, `spineparse "
        "merge %s` writes the cohort's run.json, metrics and report.\n",
        shard.index, shard.count, n, r.cohort_cases, out.c_str());
    return;
  }
  print_run_products(fs::path(r.run_json_path).parent_path().string());
}

}  // namespace

// SIGINT/SIGTERM during a run: the first stops new cases (the executor polls it), a second one
// exits at once. Either way no output is partial: files are renamed into place only when whole,
// and the next run removes the temporaries of this one.
std::atomic<int> g_stop{0};
namespace {
const char* g_stop_message = "";
std::size_t g_stop_message_size = 0;
}  // namespace

extern "C" void on_stop_signal(int sig) {
  if (g_stop.exchange(sig) != 0) ::_exit(128 + sig);
  const ssize_t n = ::write(STDERR_FILENO, g_stop_message, g_stop_message_size);
  (void)n;
}

StopSignals::StopSignals(const char* message) {
  g_stop_message = message;
  g_stop_message_size = std::strlen(message);
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &old_int_);
  ::sigaction(SIGTERM, &sa, &old_term_);
}

StopSignals::~StopSignals() {
  ::sigaction(SIGINT, &old_int_, nullptr);
  ::sigaction(SIGTERM, &old_term_, nullptr);
}

// The command that finishes an interrupted run.
std::string resume_command(const GraphArgs& a, const RunOptions& o) {
  std::string cmd = "spineparse run " + shell_quote(a.graph);
  if (!o.input_dir.empty()) cmd += " --input " + shell_quote(o.input_dir);
  cmd += " --output " + shell_quote(o.output_dir);
  for (const auto& s : a.sets) cmd += " --set " + shell_quote(s);
  for (const auto& d : a.plugin_dirs) cmd += " --plugin-dir " + shell_quote(d);
  if (!a.device.empty()) cmd += " --device " + shell_quote(a.device);
  if (o.shard.active())
    cmd += " --shard " + std::to_string(o.shard.index) + "/" + std::to_string(o.shard.count);
  return cmd + " --resume";
}

void add_run(CLI::App& app) {
  auto a = std::make_shared<GraphArgs>();
  auto opts = std::make_shared<RunOptions>();
  auto* sub = app.add_subcommand("run", "Run a graph over a dataset folder");
  add_graph_args(sub, *a);
  sub->add_option("--input,-i", opts->input_dir, "dataset folder (original layout or flat)");
  sub->add_option("--output,-o", opts->output_dir, "output folder")->capture_default_str();
  sub->add_flag("--resume", opts->resume, "skip cases whose outputs are already complete");
  sub->add_option("--device", a->device,
                  "device of every network node: cpu, cuda, cuda:N or auto (a --set for one "
                  "node wins)");
  sub->add_flag_callback(
      "--quiet,-q", [opts] { opts->progress = "none"; },
      "no progress lines (the summary is still printed)");
  sub->add_option("--threads", opts->threads, "worker threads in total (0: all cores)");
  sub->add_option("--progress", opts->progress, "auto, plain or none")
      ->check(CLI::IsMember({"auto", "plain", "none"}));
  auto shard = std::make_shared<std::string>();
  auto shards = std::make_shared<int>(0);
  sub->add_option("--shard", *shard,
                  "run shard K/N of the cohort (0 <= K < N), or 'auto': from the environment "
                  "(Slurm array or tasks, MPI, torchrun, Kubernetes); then `spineparse merge`");
  sub->add_option("--shards", *shards,
                  "the shard count for --shard auto where the environment has none (Kubernetes)");
  sub->callback([a, opts, shard, shards] {
    opts->after_case = release_after_case();
    if (!shard->empty() || *shards > 0) {
      try {
        opts->shard = parse_shard(shard->empty() ? "auto" : *shard, *shards);
      } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return set_exit_code(2);
      }
      std::fprintf(stderr, "shard %d of %d (%s)\n", opts->shard.index, opts->shard.count,
                   opts->shard.source.c_str());
    }
    Registry registry;
    auto graph = load_graph_args(*a, registry);
    if (!graph) return set_exit_code(2);
    try {
      opts->stop = &g_stop;
      RunReport r;
      {
        StopSignals handlers(
            "\nstopping: no new case starts, the cases in flight finish (press Ctrl-C again to "
            "stop at once)\n");
        r = run_graph(*graph, registry, *opts);
      }
      print_summary(r, opts->shard);
      if (r.stopped_by) {
        std::fprintf(
            stderr,
            "interrupted: %d case(s) did not run (listed in %s); to finish the run:\n  %s\n",
            r.not_run, r.run_json_path.c_str(), resume_command(*a, *opts).c_str());
        return set_exit_code(128 + r.stopped_by);  // 130 for SIGINT, 143 for SIGTERM
      }
      if (!r.stop_reason.empty()) {
        std::fprintf(stderr,
                     "stopped: %s\nno later case could succeed, so %d case(s) did not run "
                     "(listed in %s); once the cause is fixed, finish the run with:\n  %s\n",
                     r.stop_reason.c_str(), r.not_run, r.run_json_path.c_str(),
                     resume_command(*a, *opts).c_str());
        return set_exit_code(1);
      }
      // 1: some cases failed, or a whole-run product (the report page) could not be written.
      // A shard that ran exits 0 even with failed cases (its record lists them and `merge`
      // exits 1 for them): launchers such as mpirun stop every other rank when one exits
      // non-zero.
      const bool failed_cases = r.failed > 0 && !opts->shard.active();
      set_exit_code(failed_cases || !r.run_errors.empty() ? 1 : 0);
    } catch (const RunError& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      set_exit_code(2);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      set_exit_code(2);
    }
  });
}

}  // namespace spineparse::tools::cli
