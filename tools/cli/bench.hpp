// The parts of `spineparse bench` (cmd_bench.cpp runs them): resident memory (bench_memory.cpp),
// the networks alone and the machine's peak (bench_networks.cpp), and where the time of the run
// went, as shares of the machine, and its trace (bench_report.cpp). Internal to the CLI.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "spineparse/executor.hpp"
#include "spineparse/graph.hpp"
#include "spineparse/registry.hpp"

namespace spineparse::tools::cli::bench {
using nlohmann::json;

struct BenchArgs {
  std::string graph, input, output = "bench-out";
  int cases = 20, warmup = 1, network_cases = 2, threads = 0, size = 880, slices = 12;
  bool baseline = true;
  std::vector<std::string> sets, plugin_dirs;
};

// ---- resident memory (bench_memory.cpp)

double peak_rss_mb();

double current_rss_mb();

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
json memory_summary(const std::vector<std::pair<double, double>>& s, double interval_s);

// ---- the networks alone, the machine's peak (bench_networks.cpp)

// What the network-only replay measured: per network node its mean seconds per timed case and
// the GFLOP per case it reported (case attribute "gflop.<node>"; 0 for custom networks).
// A node whose calls hold several cores or a device: a network (what it declared in open()).
bool is_network(const ResourceUse& u);

// The run's network nodes: those is_network() says, and those that recorded the precision they
// ran in (a network stage given one core, `cores=1`, holds no more than a CPU stage).
std::set<std::string> network_nodes(const RunReport& r);

struct NetworkTimes {
  double seconds_per_case = 0;  // all network stages together
  int cases = 0;
  std::map<std::string, double> node_s, node_gflop;
  std::map<std::string, double> alone_s;  // every stage's seconds per case, run alone
};

// Runs the graph case by case with nothing overlapping and times every stage (alone_s), the
// network stages (those declaring several cores or a device, and the nodes in `networks`) also as
// node_s: what the networks cost with no other stage beside them. `threads` is the
// intra-op thread count the network stages are opened with. The replay runs on a fresh thread:
// LibTorch fixes a thread's OpenMP team size the first time that thread runs a parallel operator.
NetworkTimes network_only(const GraphSpec& g, const Registry& reg, const std::string& input,
                          int n_cases, int threads, const std::set<std::string>& networks = {});

// The same graph as plain eager LibTorch runs it: each network node with network::make_eager's
// options (float32, one slice per forward pass, no inference rewrites) where its stage declares
// them, each change listed as "node.param=value"; the caller gives it every core, as LibTorch
// users set their intra-op threads. A network whose parameters are not the network options (a
// plugin's own) is timed as it is.
GraphSpec eager_baseline_of(const GraphSpec& g, const Registry& reg,
                            const std::set<std::string>& networks,
                            std::vector<std::string>& changed);

std::string first_line(const std::string& s);

// The machine's measured peak (nn/peak.hpp) at each precision a network may run in, on each
// device a network ran on: float32 and bfloat16 on the CPU, also float16 on a GPU. Keyed
// "device/precision" in `peak_of`. Empty without LibTorch.
json measure_peaks(const RunReport& r, int threads, std::map<std::string, double>& peak_of);

// Per network node: the precision it ran in and why, its work per case, its network-only time,
// the GFLOP/s it achieved and the share of the measured peak of its precision on its device.
json network_table(const GraphSpec& g, const RunReport& r, const NetworkTimes& net,
                   const std::map<std::string, double>& peak_of);

// The limit: the networks' GFLOP per case over the measured peak of each one's precision on its
// device, the fastest any implementation doing the same arithmetic could go; the run, the
// networks alone and a user's first run (start-up included) as shares of it. Empty without a
// peak for every network.
json limit_of(const json& networks, const std::map<std::string, double>& peak_of,
              double seconds_per_case, double network_only_s, const RunReport& first_run);

// ---- the run's time and the machine's shares (bench_report.cpp)

struct StageTimes {
  std::map<std::string, double> busy, waiting;
  std::map<std::string, int> count;
};

// Per stage: busy time, and waiting time before it (since the case left its input).
StageTimes stage_times(const GraphSpec& g, const RunReport& r);

json stage_table(const GraphSpec& g, const RunReport& r, StageTimes& t, const NetworkTimes& alone,
                 double& net_busy);

// The total length of the union of the intervals.
double union_of(std::vector<std::pair<double, double>> spans);

// Seconds of the wall time during which at least one network stage was running: the GPU busy
// time when the networks run on a GPU (the union of their spans, so overlap counts once).
double network_busy_union(const RunReport& r);

// Seconds from the start of the cases to the end of the first one to complete (the stages were
// opened before: RunReport::open_s).
double first_case_s(const RunReport& r);

// The share of the wall time each resource was held: the cores (core-seconds granted over cores
// x wall time) and each device (the union of the times calls held it: whole calls, or the
// scopes of a call that holds its device only for its device work).
json resource_shares(const RunReport& r);

// Chrome trace events: one complete event per case and stage, one track per worker thread.
void write_trace(const BenchArgs& a, const RunReport& r,
                 const std::vector<std::pair<double, double>>& rss_samples);

// The CPU this ran on, for bench.json (figures are only comparable on one machine).
json cpu_summary();

}  // namespace spineparse::tools::cli::bench
