// spineparse bench: throughput of a graph over a cohort, with per-stage busy and waiting time,
// cases in flight, peak memory, the network-only time per case, and a Chrome trace.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>
#include <tuple>

#include "allocator.hpp"
#include "commands.hpp"
#include "io/synth.hpp"
#include "plugins/network/network_options.hpp"
#include "spineparse/executor.hpp"
#include "spineparse/files.hpp"
#include "spineparse/graph.hpp"
#include "spineparse/graph_draft.hpp"
#include "spineparse/registry.hpp"
#ifdef SPINEPARSE_WITH_TORCH
#include "nn/peak.hpp"
#include "spineparse/text.hpp"
#endif

namespace spineparse::tools::cli {
namespace fs = std::filesystem;
using nlohmann::json;
using plugins::network::NetworkNotes;
using plugins::network::NetworkOptions;
using plugins::network::ResUNetOptions;  // every network parameter (the GCSN's are a subset)

namespace {

struct BenchArgs {
  std::string graph, input, output = "bench-out";
  int cases = 20, warmup = 1, network_cases = 2, threads = 0, size = 880, slices = 12;
  bool baseline = true;
  std::vector<std::string> sets, plugin_dirs;
};

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;  // kilobytes on Linux
}

double current_rss_mb() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long pages = 0, resident = 0;
  const int got = std::fscanf(f, "%ld %ld", &pages, &resident);
  std::fclose(f);
  return got == 2 ? resident * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0)
                  : 0.0;
}

// Resident memory sampled every `interval` while the timed run goes on: the memory track of the
// trace, and a growth figure that one long run gives on its own (later half against earlier half).
class RssSampler {
 public:
  explicit RssSampler(double interval_s) : interval_(interval_s) {
    thread_ = std::thread([this] {
      std::unique_lock<std::mutex> lk(mu_);
      do {
        samples_.emplace_back(
            std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
                .count(),
            current_rss_mb());
      } while (
          !cv_.wait_for(lk, std::chrono::duration<double>(interval_), [this] { return stop_; }));
    });
  }
  ~RssSampler() { stop(); }
  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  // (steady_clock seconds since its epoch, resident MB)
  const std::vector<std::pair<double, double>>& samples() const { return samples_; }

 private:
  double interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<std::pair<double, double>> samples_;
  std::thread thread_;
};

// Largest sample, median and 95th percentile of the sampled memory, the largest sample of each
// half of the run, and their ratio (> 1: memory grew over the cohort).
json memory_summary(const std::vector<std::pair<double, double>>& s, double interval_s) {
  json m = {{"samples", s.size()}, {"interval_s", interval_s}};
  if (s.empty()) return m;
  std::vector<double> v;
  for (const auto& x : s) v.push_back(x.second);
  const double mid_t = s.back().first / 2;
  double first = 0, second = 0;
  for (const auto& [t, mb] : s) {
    double& half = t < mid_t ? first : second;
    half = std::max(half, mb);
  }
  std::sort(v.begin(), v.end());
  m["max_mb"] = v.back();
  m["median_mb"] = v[v.size() / 2];
  m["p95_mb"] = v[std::min(v.size() - 1, static_cast<std::size_t>(0.95 * v.size()))];
  m["first_half_max_mb"] = first;
  m["second_half_max_mb"] = second;
  m["second_half_vs_first_half"] = first > 0 ? second / first : 0.0;
  return m;
}

// What the network-only replay measured: per network node its mean seconds per timed case and
// the GFLOP per case it reported (case attribute "gflop.<node>"; 0 for custom networks).
// A node whose calls hold several cores or a device: a network (what it declared in open()).
bool is_network(const ResourceUse& u) { return u.exclusive_cores() || !u.device.empty(); }

std::set<std::string> network_nodes(const RunReport& r) {
  std::set<std::string> out;
  for (const auto& [node, use] : r.node_resources)
    if (is_network(use)) out.insert(node);
  return out;
}

struct NetworkTimes {
  double seconds_per_case = 0;  // all network stages together
  int cases = 0;
  std::map<std::string, double> node_s, node_gflop;
  std::map<std::string, double> alone_s;  // every stage's seconds per case, run alone
};

// Runs the graph case by case with nothing overlapping and times every stage (alone_s), the
// network stages (those declaring several cores or a device) also as node_s: what the networks
// cost with no other stage beside them. `threads` is the
// intra-op thread count the network stages are opened with. The replay runs on a fresh thread:
// LibTorch fixes a thread's OpenMP team size the first time that thread runs a parallel operator.
NetworkTimes network_only(const GraphSpec& g, const Registry& reg, const std::string& input,
                          int n_cases, int threads) {
  NetworkTimes result;
  std::exception_ptr error;
  std::thread worker([&] {
    try {
      std::vector<std::unique_ptr<Stage>> stages;
      std::vector<std::vector<std::string>> consumes;  // as the executor removes them
      std::vector<bool> is_net;
      ResourceUse declared;
      StageContext ctx;
      ctx.declare = [&declared](const ResourceUse& u) { declared = u; };
      ctx.input_dir = input;
      ctx.output_dir =
          (fs::temp_directory_path() / ("spineparse-bench-" + std::to_string(::getpid()))).string();
      ctx.total_threads = threads;
      for (const auto& n : g.nodes) {
        stages.push_back(reg.create(n.stage, n.params));
        const StageDescription* d = reg.find(n.stage);
        consumes.push_back(d ? d->consumes : std::vector<std::string>{});
        ctx.node_id = n.id;
        declared = ResourceUse{};
        stages.back()->open(ctx);
        is_net.push_back(is_network(declared));
      }
      auto seeds = stages[0]->enumerate(ctx);
      for (int i = 0; i < std::min<int>(n_cases + 1, static_cast<int>(seeds.size())); ++i) {
        auto c = std::make_shared<Case>(seeds[i].id, i);
        for (const auto& [k, v] : seeds[i].attrs) c->set_attr(k, v);
        CasePtr cur = c;
        std::map<std::string, double> t;
        for (std::size_t s = 0; s < stages.size(); ++s) {
          const auto t0 = std::chrono::steady_clock::now();
          cur = call_stage(*stages[s], g.nodes[s].id, cur, consumes[s]);  // the executor's rules
          const double dt =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (cur->failed())
            throw std::runtime_error("the network-only replay: case " + cur->id() +
                                     " failed at node '" + cur->error()->node +
                                     "': " + cur->error()->message);
          if (is_net[s]) t[g.nodes[s].id] += dt;
          if (i > 0) result.alone_s[g.nodes[s].id] += dt;
        }
        if (i == 0) continue;  // the first case warms the networks up
        ++result.cases;
        for (const auto& [node, dt] : t) {
          result.node_s[node] += dt;
          result.seconds_per_case += dt;
          result.node_gflop[node] +=
              std::atof(cur->attr(plugins::network::gflop_attribute(node), "0").c_str());
        }
      }
      for (auto& s : stages) s->close();
      std::error_code ec;
      fs::remove_all(ctx.output_dir, ec);
      if (result.cases > 0) {
        result.seconds_per_case /= result.cases;
        for (auto* m : {&result.node_s, &result.node_gflop, &result.alone_s})
          for (auto& [node, v] : *m) v /= result.cases;
      }
    } catch (...) {
      error = std::current_exception();
    }
  });
  worker.join();
  if (error) std::rethrow_exception(error);
  return result;
}

// The same graph as plain eager LibTorch runs it: each network node with network::make_eager's
// options (float32, one slice per forward pass, no inference rewrites) where its stage declares
// them, each change listed as "node.param=value"; the caller gives it every core, as LibTorch
// users set their intra-op threads. A network whose parameters are not the network options (a
// plugin's own) is timed as it is.
GraphSpec eager_baseline_of(const GraphSpec& g, const Registry& reg,
                            const std::set<std::string>& networks,
                            std::vector<std::string>& changed) {
  GraphSpec b = g;
  const auto& set = params_of<ResUNetOptions>();
  for (auto& n : b.nodes) {
    const StageDescription* d = reg.find(n.stage);
    if (!d || !networks.count(n.id)) continue;
    ResUNetOptions o;
    try {
      o = set.decode(n.params);
    } catch (const std::exception&) {
      continue;  // a parameter of the same name and another type: not the network options
    }
    make_eager(o);
    const Params eager = set.encode(o);
    for (const auto& [key, value] : eager.values()) {
      if (!d->param(key) || (n.params.has(key) && n.params.values().at(key) == value)) continue;
      n.params.set(key, value);
      changed.push_back(n.id + "." + key + "=" + param_value_to_string(value));
    }
  }
  return b;
}

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

[[maybe_unused]] std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// The machine's measured peak (nn/peak.hpp) at each precision a network may run in, on each
// device a network ran on: float32 and bfloat16 on the CPU, also float16 on a GPU. Keyed
// "device/precision" in `peak_of`. Empty without LibTorch.
json measure_peaks(const RunReport& r, int threads, std::map<std::string, double>& peak_of) {
  json peaks = json::array();
#ifdef SPINEPARSE_WITH_TORCH
  // bfloat16 on the CPU when it has it natively or a network ran in it (emulated otherwise).
  bool cpu_bf16 = nn::cpu_features().native_bf16();
  std::map<std::string, std::vector<nn::Precision>> wanted;
  for (const auto& [node, notes] : r.node_notes) {
    auto d = notes.find(NetworkNotes::kDevice);
    auto p = notes.find(NetworkNotes::kPrecision);
    if (d != notes.end() && d->second == "cpu" && p != notes.end() && p->second == "bf16")
      cpu_bf16 = true;
    if (d != notes.end() && d->second != "cpu")
      wanted[d->second] = {nn::Precision::kFloat32, nn::Precision::kFloat16,
                           nn::Precision::kBFloat16};
  }
  wanted["cpu"] = {nn::Precision::kFloat32};
  if (cpu_bf16) wanted["cpu"].push_back(nn::Precision::kBFloat16);
  for (const auto& [device, precisions] : wanted) {
    for (const auto p : precisions) {
      std::fprintf(stderr, "bench: measuring the %s peak on %s\n", nn::precision_name(p),
                   device.c_str());
      nn::PeakProbe probe;
      try {
        probe = nn::measure_peak(p, device, threads);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "bench: the %s peak on %s could not be measured: %s\n",
                     nn::precision_name(p), device.c_str(), first_line(e.what()).c_str());
        peaks.push_back({{"device", device},
                         {"precision", nn::precision_name(p)},
                         {"error", first_line(e.what())}});
        continue;
      }
      peak_of[device + "/" + probe.precision] = probe.peak_gflops();
      peaks.push_back({{"device", device},
                       {"precision", probe.precision},
                       {"threads", probe.threads},
                       {"gemm_gflops", probe.gemm_gflops},
                       {"conv_gflops", probe.conv_gflops},
                       {"peak_gflops", probe.peak_gflops()}});
    }
  }
#else
  (void)r, (void)threads, (void)peak_of;
#endif
  return peaks;
}

// Per network node: the precision it ran in and why, its work per case, its network-only time,
// the GFLOP/s it achieved and the share of the measured peak of its precision on its device.
json network_table(const GraphSpec& g, const RunReport& r, const NetworkTimes& net,
                   const std::map<std::string, double>& peak_of) {
  json nets = json::array();
  double gflop = 0, seconds = 0;
  std::string key_all;
  bool one_key = true;
  const auto networks = network_nodes(r);
  for (const auto& n : g.nodes) {
    if (!networks.count(n.id)) continue;
    std::map<std::string, std::string> notes;
    if (auto it = r.node_notes.find(n.id); it != r.node_notes.end()) notes = it->second;
    const std::string precision =
        notes.count(NetworkNotes::kPrecision) ? notes[NetworkNotes::kPrecision] : "unknown";
    const std::string device =
        notes.count(NetworkNotes::kDevice) ? notes[NetworkNotes::kDevice] : "unknown";
    const double s = net.node_s.count(n.id) ? net.node_s.at(n.id) : 0.0;
    const double f = net.node_gflop.count(n.id) ? net.node_gflop.at(n.id) : 0.0;
    json row = {{"node", n.id},
                {"precision", precision},
                {"precision_reason", notes[NetworkNotes::kPrecisionReason]},
                {"device", device},
                {"gflop_per_case", f},
                {"seconds_per_case", s},
                {"gflops", s > 0 ? f / s : 0.0}};
    const std::string key = device + "/" + precision;
    if (auto pk = peak_of.find(key); pk != peak_of.end() && s > 0 && f > 0)
      row["share_of_peak"] = f / s / pk->second;
    one_key = one_key && (key_all.empty() || key_all == key);
    key_all = key;
    gflop += f;
    seconds += s;
    nets.push_back(row);
  }
  json total = {{"node", "all networks"},
                {"gflop_per_case", gflop},
                {"seconds_per_case", seconds},
                {"gflops", seconds > 0 ? gflop / seconds : 0.0}};
  if (auto pk = peak_of.find(key_all); one_key && pk != peak_of.end() && seconds > 0 && gflop > 0)
    total["share_of_peak"] = gflop / seconds / pk->second;
  nets.push_back(total);
  return nets;
}

// The limit: the networks' GFLOP per case over the measured peak of each one's precision on its
// device, the fastest any implementation doing the same arithmetic could go; the run, the
// networks alone and a user's first run (start-up included) as shares of it. Empty without a
// peak for every network.
json limit_of(const json& networks, const std::map<std::string, double>& peak_of,
              double seconds_per_case, double network_only_s, const RunReport& first_run) {
  double limit = 0;
  for (const auto& n : networks) {
    if (n["node"] == "all networks") continue;
    const auto pk = peak_of.find(n["device"].get<std::string>() + "/" +
                                 n["precision"].get<std::string>());
    if (pk == peak_of.end() || pk->second <= 0) return json::object();
    limit += n["gflop_per_case"].get<double>() / pk->second;
  }
  if (limit <= 0) return json::object();
  auto share = [limit](double s) { return s > 0 ? limit / s : 0.0; };
  json j = {{"seconds_per_case", limit},
            {"how",
             "the networks' GFLOP per case / the measured peak of each network's precision on its "
             "device: the fastest any implementation doing the same arithmetic could go"},
            {"end_to_end_share", share(seconds_per_case)},
            {"network_only_share", share(network_only_s)}};
  const int n = first_run.ok + first_run.failed;
  if (n > 0) {
    const double s = first_run.open_s + first_run.wall_s;
    j["first_run"] = {{"cases", n},
                      {"seconds", s},
                      {"share", share(s / n)},
                      {"how",
                       "the warm-up run, the first of the process as a user starts one: stages "
                       "opened (weights, primitives) and its cases, over the limit for as many"}};
  }
  return j;
}

struct StageTimes {
  std::map<std::string, double> busy, waiting;
  std::map<std::string, int> count;
};

// Per stage: busy time, and waiting time before it (since the case left its input).
StageTimes stage_times(const GraphSpec& g, const RunReport& r) {
  StageTimes t;
  auto& busy = t.busy;
  auto& waiting = t.waiting;
  auto& count = t.count;
  std::map<std::pair<std::size_t, std::string>, const Span*> by_case;
  for (const auto& s : r.spans) by_case[{s.case_index, s.node}] = &s;
  for (const auto& s : r.spans) {
    busy[s.node] += s.end_s - s.start_s;
    ++count[s.node];
    const NodeSpec* n = g.node(s.node);
    if (n && !n->inputs.empty()) {
      auto it = by_case.find({s.case_index, n->inputs[0]});
      if (it != by_case.end()) waiting[s.node] += s.start_s - it->second->end_s;
    }
  }
  return t;
}

json stage_table(const GraphSpec& g, const RunReport& r, StageTimes& t, const NetworkTimes& alone,
                 double& net_busy) {
  auto& busy = t.busy;
  auto& waiting = t.waiting;
  auto& count = t.count;
  json stages = json::array();
  for (const auto& n : g.nodes) {
    const ResourceUse use =
        r.node_resources.count(n.id) ? r.node_resources.at(n.id) : ResourceUse{};
    if (is_network(use)) net_busy += busy[n.id];
    const double alone_s = alone.alone_s.count(n.id) ? alone.alone_s.at(n.id) : 0.0;
    stages.push_back({{"node", n.id},
                      {"stage", n.stage},
                      {"resources", use.describe()},
                      {"alone_per_case_s", alone_s},
                      {"concurrency", n.concurrency == 0 ? json("parallel") : json(n.concurrency)},
                      {"cases", count[n.id]},
                      {"busy_s", busy[n.id]},
                      {"busy_per_case_s", count[n.id] ? busy[n.id] / count[n.id] : 0.0},
                      {"share_of_wall", r.wall_s > 0 ? busy[n.id] / r.wall_s : 0.0},
                      {"waiting_s", waiting[n.id]},
                      {"waiting_per_case_s", count[n.id] ? waiting[n.id] / count[n.id] : 0.0}});
  }
  return stages;
}

// The total length of the union of the intervals.
double union_of(std::vector<std::pair<double, double>> spans) {
  std::sort(spans.begin(), spans.end());
  double total = 0, cur_start = -1, cur_end = -1;
  for (const auto& [b, e] : spans) {
    if (b > cur_end) {
      if (cur_end > cur_start) total += cur_end - cur_start;
      cur_start = b;
      cur_end = e;
    } else {
      cur_end = std::max(cur_end, e);
    }
  }
  if (cur_end > cur_start) total += cur_end - cur_start;
  return total;
}

// Seconds of the wall time during which at least one network stage was running: the GPU busy
// time when the networks run on a GPU (the union of their spans, so overlap counts once).
double network_busy_union(const RunReport& r) {
  const auto networks = network_nodes(r);
  std::vector<std::pair<double, double>> net_spans;
  for (const auto& s : r.spans)
    if (networks.count(s.node)) net_spans.emplace_back(s.start_s, s.end_s);
  return union_of(net_spans);
}

// Seconds from the start of the cases to the end of the first one to complete (the stages were
// opened before: RunReport::open_s).
double first_case_s(const RunReport& r) {
  std::map<std::size_t, double> done;
  for (const auto& s : r.spans) done[s.case_index] = std::max(done[s.case_index], s.end_s);
  double first = 0;
  for (const auto& [c, t] : done) first = first == 0 ? t : std::min(first, t);
  return first;
}

// The share of the wall time each resource was held: the cores (core-seconds granted over cores
// x wall time) and each device (the union of the times calls held it: whole calls, or the
// scopes of a call that holds its device only for its device work).
json resource_shares(const RunReport& r) {
  double core_s = 0;
  std::map<std::string, std::vector<std::pair<double, double>>> by_device;
  for (const auto& s : r.spans) {
    core_s += s.cores * (s.end_s - s.start_s);
    for (const auto& held : s.device_held) by_device[s.device].push_back(held);
  }
  json j = {{"cores", r.threads > 0 && r.wall_s > 0 ? core_s / (r.threads * r.wall_s) : 0.0}};
  for (auto& [device, spans] : by_device)
    j[device] = r.wall_s > 0 ? union_of(std::move(spans)) / r.wall_s : 0.0;
  return j;
}

// Chrome trace events: one complete event per case and stage, one track per worker thread.
void write_trace(const BenchArgs& a, const RunReport& r,
                 const std::vector<std::pair<double, double>>& rss_samples) {
  json ev = json::array();
  ev.push_back({{"name", "process_name"},
                {"ph", "M"},
                {"pid", 1},
                {"args", {{"name", "spineparse " + a.graph}}}});
  std::map<int, bool> threads;
  for (const auto& s : r.spans) {
    threads[s.thread] = true;
    ev.push_back({{"name", s.node},
                  {"cat", "stage"},
                  {"ph", "X"},
                  {"pid", 1},
                  {"tid", s.thread},
                  {"ts", s.start_s * 1e6},
                  {"dur", (s.end_s - s.start_s) * 1e6},
                  {"args",
                   {{"case", r.cases[s.case_index].id},
                    {"holds", s.cores == 0 && s.device.empty()
                                  ? std::string("nothing")
                                  : std::to_string(s.cores) + " core(s)" +
                                        (s.device.empty() ? "" : " + " + s.device)},
                    {"waited_ms", (s.start_s - s.asked_s) * 1e3}}}});
    for (const auto& [from, to] : s.device_held)  // the device's own track
      ev.push_back({{"name", s.node},
                    {"cat", "device"},
                    {"ph", "X"},
                    {"pid", 2},
                    {"tid", 0},
                    {"ts", from * 1e6},
                    {"dur", (to - from) * 1e6},
                    {"args", {{"case", r.cases[s.case_index].id}, {"device", s.device}}}});
  }
  // The cores held over time, from the grants.
  std::vector<std::pair<double, int>> steps;
  for (const auto& s : r.spans) {
    if (s.cores == 0) continue;
    steps.emplace_back(s.start_s, s.cores);
    steps.emplace_back(s.end_s, -s.cores);
  }
  std::sort(steps.begin(), steps.end());
  int held = 0;
  for (const auto& [t, d] : steps) {
    held += d;
    ev.push_back({{"name", "cores held"},
                  {"ph", "C"},
                  {"pid", 1},
                  {"ts", t * 1e6},
                  {"args", {{"cores", held}}}});
  }
  for (const auto& [t, _] : threads) {
    ev.push_back({{"name", "thread_name"},
                  {"ph", "M"},
                  {"pid", 1},
                  {"tid", t},
                  {"args", {{"name", "worker " + std::to_string(t)}}}});
  }
  for (const auto& [t, n] : r.in_flight) {
    ev.push_back({{"name", "cases in flight"},
                  {"ph", "C"},
                  {"pid", 1},
                  {"ts", t * 1e6},
                  {"args", {{"cases", n}}}});
  }
  for (const auto& [t, mb] : rss_samples) {
    ev.push_back({{"name", "resident memory"},
                  {"ph", "C"},
                  {"pid", 1},
                  {"ts", t * 1e6},
                  {"args", {{"MB", mb}}}});
  }
  write_file_atomic((fs::path(a.output) / "trace.json").string(),
                    json_text(json({{"traceEvents", ev}, {"displayTimeUnit", "ms"}})) + "\n");
}

// The CPU this ran on, for bench.json (figures are only comparable on one machine).
json cpu_summary() {
  json c = {{"cores", available_cores()}};
#ifdef SPINEPARSE_WITH_TORCH
  const nn::CpuFeatures& f = nn::cpu_features();
  c["model"] = f.model;
  c["fp32_isa"] = f.fp32_isa();
  c["bf16_isa"] = f.bf16_isa();
#endif
  return c;
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
  const NetworkTimes net = network_only(g, registry, input, a.network_cases, threads);
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
  const GraphSpec base_graph = eager_baseline_of(g, registry, network_nodes(r), changes);
  const NetworkTimes base = network_only(base_graph, registry, input, a.network_cases, threads);
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
  j["limit"] = limit_of(j["networks"], peak_of, sec_per_case, net.seconds_per_case,
                        a.warmup > 0 ? warm : r);
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
  write_file_atomic((fs::path(a.output) / "bench.json").string(),
                    json_text(j, 2) + "\n");
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
    try {
      run_bench(*a);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      set_exit_code(2);
    }
  });
}

}  // namespace spineparse::tools::cli
