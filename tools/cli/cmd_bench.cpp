// spineparse bench: throughput of a graph over a cohort, with per-stage busy and waiting time,
// cases in flight, peak memory, the network-only time per case, and a Chrome trace.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "allocator.hpp"
#include "bench.hpp"
#include "commands.hpp"
#include "io/synth.hpp"
#include "plugins/network/network_options.hpp"
#include "spineparse/executor.hpp"
#include "spineparse/files.hpp"
#include "spineparse/graph.hpp"
#include "spineparse/graph_draft.hpp"
#include "spineparse/registry.hpp"
#include "spineparse/text.hpp"

namespace spineparse::tools::cli {
namespace fs = std::filesystem;
using nlohmann::json;
using plugins::network::NetworkNotes;
using plugins::network::NetworkOptions;
using plugins::network::ResUNetOptions;  // every network parameter (the GCSN's are a subset)

namespace {
using namespace bench;

constexpr double kRssInterval = 0.1;  // seconds between resident-memory samples

// The graph with --set applied; a network node whose weights file is missing gets
// random_weights=true (timing needs the networks' shapes, not their training). Exit code 2 and
// nullopt when it does not validate.
std::optional<GraphSpec> bench_graph(const BenchArgs& a, Registry& registry,
                                     std::vector<std::string>& random_nodes) {
  GraphLoad gl;
  try {
    GraphDraft draft = GraphDraft::from_file(a.graph);
    gl = load_graph(draft, registry, a.sets);
    for (const auto& i : gl.issues) {
      const auto& net = params_of<ResUNetOptions>();
      if (i.code != "missing_path" || i.param != net.name_of(&NetworkOptions::weights)) continue;
      std::fprintf(stderr,
                   "bench: note: %s has no weights file; timing it with random full-size weights "
                   "(random_weights=true)\n",
                   i.node.c_str());
      draft.set<ResUNetOptions>(i.node, &NetworkOptions::random_weights, true);
      random_nodes.push_back(i.node);
    }
    if (!random_nodes.empty()) gl = load_graph(draft, registry, a.sets);
  } catch (const std::exception& e) {
    gl.issues.push_back({"unreadable", "", e.what()});
  }
  if (!gl.ok()) {
    for (const auto& i : gl.issues) std::fprintf(stderr, "  %s\n", i.to_string().c_str());
    set_exit_code(2);
    return std::nullopt;
  }
  return *gl.graph;
}

// --input, or a synthetic cohort of real-scan size made in the output folder.
std::string bench_input(const BenchArgs& a) {
  std::string input = a.input;
  if (input.empty()) {
    input = (fs::path(a.output) / "cohort").string();
    io::SynthOptions o;
    o.cases = a.cases + a.warmup;
    o.seed = 77;
    o.min_size = o.max_size = a.size;
    o.min_slices = o.max_slices = a.slices;
    std::fprintf(stderr, "bench: making %d synthetic cases of %dx%dx%d in %s\n", o.cases, a.size,
                 a.size, a.slices, input.c_str());
    io::write_cohort(o, input);
  }
  return input;
}

// The warm-up cases, then the timed run with resident memory sampled on the run's clock.
// The warm-up run (the first of the process, as a user starts one: weights read, primitives
// created, memory first touched) goes to `warm`; the timed run is returned.
RunReport timed_run(const GraphSpec& g, const Registry& registry, const BenchArgs& a,
                    const std::string& input, std::vector<std::pair<double, double>>& rss_samples,
                    RunReport& warm) {
  RunOptions ro;
  ro.input_dir = input;
  ro.threads = a.threads;
  ro.progress = "auto";
  ro.after_case = release_after_case();
  if (a.warmup > 0) {
    ro.output_dir = (fs::path(a.output) / "warmup").string();
    ro.filter_seeds = [&](std::vector<CaseSeed> s) {
      s.resize(std::min<std::size_t>(s.size(), static_cast<std::size_t>(a.warmup)));
      return s;
    };
    std::fprintf(stderr, "bench: %d warm-up case(s)\n", a.warmup);
    warm = run_graph(g, registry, ro);
  }
  ro.output_dir = (fs::path(a.output) / "run").string();
  ro.filter_seeds = [&](std::vector<CaseSeed> s) {
    std::vector<CaseSeed> out;
    for (std::size_t i = static_cast<std::size_t>(a.warmup);
         i < s.size() && out.size() < static_cast<std::size_t>(a.cases); ++i)
      out.push_back(s[i]);
    if (out.empty()) out = s;
    return out;
  };
  RssSampler sampler(kRssInterval);
  RunReport r = run_graph(g, registry, ro);
  sampler.stop();
  // On the run's clock (spans start at 0 once the stages opened); samples before that dropped.
  for (const auto& [t, mb] : sampler.samples())
    if (t >= r.started_s) rss_samples.emplace_back(t - r.started_s, mb);
  return r;
}

// Peaks, then per network its precision, work, time, rate and share of the peak.
void print_networks(const json& j) {
  if (j["cpu"].contains("model"))
    std::printf("machine: %s, %d cores; float32 %s, bfloat16 %s\n",
                j["cpu"]["model"].get<std::string>().c_str(), j["cpu"]["cores"].get<int>(),
                j["cpu"]["fp32_isa"].get<std::string>().c_str(),
                j["cpu"]["bf16_isa"].get<std::string>().c_str());
  for (const auto& p : j["peak"]) {
    if (p.contains("error")) continue;
    std::printf("measured peak %s %s: %.0f GFLOP/s (matrix product %.0f, 3x3 convolution %.0f)\n",
                p["device"].get<std::string>().c_str(), p["precision"].get<std::string>().c_str(),
                p["peak_gflops"].get<double>(), p["gemm_gflops"].get<double>(),
                p["conv_gflops"].get<double>());
  }
  std::printf("%-13s %-9s %-7s %11s %9s %9s %8s\n", "network", "precision", "device", "GFLOP/case",
              "s/case", "GFLOP/s", "of peak");
  for (const auto& n : j["networks"]) {
    const std::string share =
        n.contains("share_of_peak")
            ? std::to_string(static_cast<int>(100 * n["share_of_peak"].get<double>() + 0.5)) + "%"
            : "-";
    std::printf("%-13s %-9s %-7s %11.1f %9.2f %9.0f %8s\n", n["node"].get<std::string>().c_str(),
                n.value("precision", "").c_str(), n.value("device", "").c_str(),
                n["gflop_per_case"].get<double>(), n["seconds_per_case"].get<double>(),
                n["gflops"].get<double>(), share.c_str());
  }
  for (const auto& n : j["networks"])
    if (n.contains("precision_reason") && !n["precision_reason"].get<std::string>().empty())
      std::printf("  %s: %s\n", n["node"].get<std::string>().c_str(),
                  n["precision_reason"].get<std::string>().c_str());
}

void print_limit(const json& j) {
  const json& l = j["limit"];
  if (!l.contains("seconds_per_case")) {
    std::printf("limit: not known (a network's precision has no measured peak)\n");
    return;
  }
  std::printf(
      "limit (the networks' GFLOP / the measured peaks): %.2f s per case; end to end at %.0f%% of "
      "it, the networks alone at %.0f%%",
      l["seconds_per_case"].get<double>(), 100 * l["end_to_end_share"].get<double>(),
      100 * l["network_only_share"].get<double>());
  if (l.contains("first_run"))
    std::printf("; a first run of %d case(s), start-up included, at %.0f%%",
                l["first_run"]["cases"].get<int>(), 100 * l["first_run"]["share"].get<double>());
  std::printf("\n");
}

void print_bench(const BenchArgs& a, const GraphSpec& g, const RunReport& r, const json& j) {
  const json& stages = j["stages"];
  const int processed = j["cases"].get<int>();
  const double sec_per_case = j["seconds_per_case"].get<double>();
  const double net_s = j["network_only"]["seconds_per_case"].get<double>();
  const double rss = j["peak_rss_mb"].get<double>();
  const int peak_inflight = j["peak_in_flight"].get<int>();
  std::printf(
      "\n%d cases in %.1f s: %.3f cases/s, %.2f s per case (%d threads, max_in_flight %d)\n",
      processed, r.wall_s, j["cases_per_s"].get<double>(), sec_per_case, r.threads,
      g.max_in_flight);
  std::printf("%-15s %-10s %10s %10s %8s %10s\n", "node", "holds", "busy/case", "alone/case",
              "of wall", "waited/case");
  for (const auto& s : stages) {
    std::printf("%-15s %-10s %10.3f %10.3f %7.0f%% %10.3f\n", s["node"].get<std::string>().c_str(),
                s["resources"].get<std::string>().c_str(), s["busy_per_case_s"].get<double>(),
                s["alone_per_case_s"].get<double>(), 100 * s["share_of_wall"].get<double>(),
                s["waiting_per_case_s"].get<double>());
  }
  std::printf("resources held: cores %.0f%% of the wall time",
              100 * j["resources_held"]["cores"].get<double>());
  for (const auto& [k, v] : j["resources_held"].items())
    if (k != "cores") std::printf(", %s %.0f%%", k.c_str(), 100 * v.get<double>());
  std::printf(
      "\nstart-up: stages opened in %.2f s; the first case done %.2f s after the cases began\n",
      j["open_s"].get<double>(), j["first_case_s"].get<double>());
  std::printf(
      "network-only: %.2f s per case; end-to-end %.2f s per case; ratio (network-only / "
      "end-to-end) %.2f\n",
      net_s, sec_per_case, j["end_to_end_vs_network_only"].get<double>());
  std::printf(
      "network stages busy (at least one running) %.0f%% of the wall time (the GPU busy share on a "
      "GPU)\n",
      100 * j["network_busy_share"].get<double>());
  if (a.baseline) {
    std::printf(
        "eager baseline (%d threads, float32, batch 1, no rewrites): %.2f s per case; network-only "
        "/ eager baseline %.2f\n",
        r.threads, j["eager_baseline"]["seconds_per_case"].get<double>(),
        j["network_only_vs_eager_baseline"].get<double>());
  }
  print_networks(j);
  print_limit(j);
  const json& mem = j["memory"];
  if (mem.contains("max_mb")) {
    std::printf(
        "resident memory during the run: median %.0f MB, max %.0f MB; max in the first half %.0f "
        "MB, in the second %.0f MB (x%.2f)\n",
        mem["median_mb"].get<double>(), mem["max_mb"].get<double>(),
        mem["first_half_max_mb"].get<double>(), mem["second_half_max_mb"].get<double>(),
        mem["second_half_vs_first_half"].get<double>());
  }
  std::printf(
      "peak in flight %d, peak resident memory %.0f MB\nbench: %s/bench.json, %s/trace.json (open "
      "in Perfetto or chrome://tracing)\n",
      peak_inflight, rss, a.output.c_str(), a.output.c_str());
}

// The replays: the networks alone (and, with a.baseline, as plain eager LibTorch runs them),
// recorded into bench.json's "network_only" and "eager_baseline". Returns the network-only times.
NetworkTimes replays(const BenchArgs& a, const GraphSpec& g, Registry& registry,
                     const std::string& input, const RunReport& r, int threads, json& j) {
  std::fprintf(stderr, "bench: network-only replay of %d case(s)\n", a.network_cases);
  const auto networks = network_nodes(r);
  const NetworkTimes net = network_only(g, registry, input, a.network_cases, threads, networks);
  j["network_only"] = {{"seconds_per_case", net.seconds_per_case},
                       {"cases", net.cases},
                       {"how",
                        "the network stages timed alone: the graph replayed case by case with "
                        "nothing overlapping, first case as warm-up"}};
  if (!a.baseline) return net;
  std::fprintf(stderr,
               "bench: eager baseline replay of %d case(s) (%d intra-op threads, float32, batch "
               "1, no rewrites)\n",
               a.network_cases, threads);
  std::vector<std::string> changes;
  const GraphSpec base_graph = eager_baseline_of(g, registry, networks, changes);
  const NetworkTimes base =
      network_only(base_graph, registry, input, a.network_cases, threads, networks);
  j["eager_baseline"] = {
      {"seconds_per_case", base.seconds_per_case},
      {"cases", base.cases},
      {"threads", threads},
      {"changes", changes},
      {"how",
       "the network-only replay as plain eager LibTorch runs it: every core as intra-op "
       "threads, float32, one slice per forward pass, no BatchNorm folding or layout rewrites"}};
  j["network_only_vs_eager_baseline"] = base.seconds_per_case > 0
                                            ? net.seconds_per_case / base.seconds_per_case
                                            : 0.0;  // time ratio: 0.5 = twice as fast
  return net;
}

// bench.json's record of the timed run itself: throughput, stages, resources, memory.
void record_run(const BenchArgs& a, const GraphSpec& g, const RunReport& r, const NetworkTimes& net,
                const json& peaks, const std::map<std::string, double>& peak_of,
                const std::vector<std::pair<double, double>>& rss_samples, double peak_rss,
                const RunReport& warm, json& j) {
  const int processed = r.ok + r.failed;
  StageTimes times = stage_times(g, r);
  double net_busy = 0;
  j["stages"] = stage_table(g, r, times, net, net_busy);
  const double sec_per_case = processed ? r.wall_s / processed : 0.0;
  j["cases"] = processed;
  j["failed"] = r.failed;
  j["warmup_cases"] = a.warmup;
  j["threads"] = r.threads;
  j["max_in_flight"] = g.max_in_flight;
  j["wall_s"] = r.wall_s;
  j["cases_per_s"] = r.wall_s > 0 ? processed / r.wall_s : 0.0;
  j["seconds_per_case"] = sec_per_case;
  j["network_busy_per_case_s"] = processed ? net_busy / processed : 0.0;
  // = the GPU busy share with the networks on a GPU
  j["network_busy_share"] = r.wall_s > 0 ? network_busy_union(r) / r.wall_s : 0.0;
  j["resources_held"] = resource_shares(r);
  j["open_s"] = r.open_s;
  j["first_case_s"] = first_case_s(r);
  j["cpu"] = cpu_summary();
  j["peak"] = peaks;
  j["networks"] = network_table(g, r, net, peak_of);
  j["limit"] =
      limit_of(j["networks"], peak_of, sec_per_case, net.seconds_per_case, a.warmup > 0 ? warm : r);
  // throughput ratio: 1 = all overhead hidden
  j["end_to_end_vs_network_only"] = sec_per_case > 0 ? net.seconds_per_case / sec_per_case : 0.0;
  json inflight = json::array();
  int peak_inflight = 0;
  for (const auto& [t, n] : r.in_flight) {
    inflight.push_back({t, n});
    peak_inflight = std::max(peak_inflight, n);
  }
  j["in_flight"] = inflight;
  j["peak_in_flight"] = peak_inflight;
  j["peak_rss_mb"] = peak_rss;  // the process's peak before the replays, warm-up included
  j["memory"] = memory_summary(rss_samples, kRssInterval);
}

void run_bench(const BenchArgs& a) {
  Registry registry;
  load_default_plugins(registry, a.plugin_dirs);
  std::vector<std::string> random_nodes;
  const auto graph = bench_graph(a, registry, random_nodes);
  if (!graph) return;
  const GraphSpec& g = *graph;
  fs::create_directories(a.output);
  const std::string input = bench_input(a);
  std::vector<std::pair<double, double>> rss_samples;
  RunReport warm;
  const RunReport r = timed_run(g, registry, a, input, rss_samples, warm);
  const double peak_rss = peak_rss_mb();
  json j;
  j["graph"] = a.graph;
  j["random_weights"] = random_nodes;  // nodes timed with random weights (no weights file)
  j["input"] = input;
  const int threads = r.threads > 0 ? r.threads : available_cores();
  const NetworkTimes net = replays(a, g, registry, input, r, threads, j);
  std::map<std::string, double> peak_of;
  const json peaks = measure_peaks(r, threads, peak_of);
  record_run(a, g, r, net, peaks, peak_of, rss_samples, peak_rss, warm, j);
  write_file_atomic((fs::path(a.output) / "bench.json").string(), json_text(j, 2) + "\n");
  write_trace(a, r, rss_samples);
  print_bench(a, g, r, j);
  set_exit_code(r.failed ? 1 : 0);
}

}  // namespace

void add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* sub = app.add_subcommand("bench",
                                 "Measure a graph's throughput: per-stage busy/waiting time, "
                                 "memory, network-only time, trace");
  sub->add_option("graph", a->graph, "graph file")->required();
  sub->add_option("--cases,-n", a->cases, "cases to time")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  sub->add_option("--input,-i", a->input,
                  "dataset folder (default: a synthetic cohort of real-scan size)");
  sub->add_option("--warmup", a->warmup, "untimed cases first")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  sub->add_option("--network-cases", a->network_cases, "cases for the network-only replay")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  sub->add_flag("!--no-baseline", a->baseline, "skip the eager-LibTorch baseline replay");
  sub->add_option("--output,-o", a->output, "where bench.json, trace.json and the run go")
      ->capture_default_str();
  sub->add_option("--threads", a->threads, "worker threads (0: all cores)");
  sub->add_option("--size", a->size, "in-plane size of the synthetic cases")->capture_default_str();
  sub->add_option("--slices", a->slices, "slices of the synthetic cases")->capture_default_str();
  sub->add_option("--set", a->sets, "override a parameter: NODE.PARAM=VALUE (repeatable)");
  sub->add_option("--plugin-dir", a->plugin_dirs, "extra folder to load plugins from (repeatable)");
  sub->callback([a] {
    run_command([&] {
      run_bench(*a);
      return exit_code();
    });
  });
}

}  // namespace spineparse::tools::cli
