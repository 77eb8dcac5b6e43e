// Executor: turns a validated GraphSpec into a oneTBB flow graph and streams the cases through it.
//
// input_node (source seeds) -> limiter_node(max_in_flight) -> one function_node per stage, each
// with the node's concurrency -> completion node (serial) that records the case and releases a
// limiter slot. Cases in flight are therefore bounded whatever the cohort size. No exception ever
// reaches TBB: each stage call is wrapped and a failure becomes an error on that case.
//
// Thread policy (docs/performance.md, "Cores, devices and threads"): TBB gets `threads` workers in
// total, and the run's `threads` cores are a budget: before each call the executor grants the
// node's declared ResourceUse (StageContext::declare; one core when undeclared), so a network on
// the CPU holds every core alone with its intra-op threads set to them (threads_now()), ordinary
// stages run one core each beside each other, and a device is held by one call at a time while CPU
// stages use the cores. Stage calls run isolated (tbb::this_task_arena::isolate): a thread waiting
// inside a stage never picks up another stage's call.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "spineparse/case.hpp"
#include "spineparse/graph.hpp"
#include "spineparse/run_error.hpp"
#include "spineparse/shard.hpp"
#include "spineparse/stage.hpp"

namespace spineparse {

struct RunOptions {
  std::string input_dir;
  std::string output_dir = "out";
  bool resume = false;
  int threads = 0;           // 0: available_cores()
  int threads_per_case = 0;  // 0: threads / min(threads, max_in_flight), at least 1
  // Progress: "auto" (a live line on a terminal, periodic lines otherwise), "plain", "none".
  std::string progress = "auto";
  double progress_interval_s = 10.0;
  // Seeds to run instead of asking the source (benchmarks).
  std::function<std::vector<CaseSeed>(std::vector<CaseSeed>)> filter_seeds;
  // Called once per finished case, after its record is released (the CLI returns freed memory
  // to the system here, so that peak memory does not creep up over a long cohort).
  std::function<void()> after_case;
  // When it becomes non-zero (a signal number, set by a handler), no new case starts; the cases
  // in flight finish and the record marks the run interrupted, listing the cases that did not run.
  const std::atomic<int>* stop = nullptr;
  // A shard runs its part of the cohort (shard_members), records it in shard_record_path and
  // leaves the whole-run products (stages' after_run: metrics summaries, report) to
  // `spineparse merge`. Shards of one run may share the output folder; the same shard twice may
  // not, nor a shard and an unsharded run.
  Shard shard;
};

// One span of work: a case in a stage, for the reports and the Chrome trace.
struct Span {
  std::string node;
  std::size_t case_index = 0;  // its entry in RunReport::cases
  double start_s = 0.0;        // since run start: when the call got its resources and began
  double end_s = 0.0;
  int thread = 0;  // small id of the worker thread
  double asked_s = 0.0;  // when it asked for its resources (start_s - asked_s: waited for them)
  int cores = 0;         // what it held (ResourceUse granted)
  std::string device;
  // When it held the device: the whole call, or its hold_device() scopes (device_in_scopes).
  std::vector<std::pair<double, double>> device_held;
};

struct CaseOutcome {
  std::string id;
  std::size_t index = 0;  // in the whole cohort (a shard runs some of them)
  std::string status;     // "ok", "failed", "skipped", "not_run"
  std::string error_node;
  std::string error;
  std::vector<StageTiming> timings;
  std::map<std::string, double> metrics;
  std::map<std::string, std::string> attrs;
};

struct RunReport {
  std::vector<CaseOutcome> cases;  // in case order
  std::vector<Span> spans;
  std::vector<std::pair<double, int>> in_flight;  // (time, cases in flight) after each change
  double wall_s = 0.0;
  // When the cases started (std::chrono::steady_clock, seconds since its epoch): span and
  // in-flight times are relative to it, after the stages opened.
  double started_s = 0.0;
  double open_s = 0.0;       // seconds the stages took to open (weights, devices) before that
  long long started_at = 0;  // when the run began, seconds since the Unix epoch
  int threads = 0;
  int threads_per_case = 0;
  int ok = 0, failed = 0, skipped = 0;
  std::string run_json_path;     // OUTPUT/run.json, or the shard's record
  std::size_t cohort_cases = 0;  // cases in the whole cohort (cases.size() unless sharded)
  int not_run = 0;               // cases never started because the run was stopped
  int stopped_by = 0;            // the signal that stopped it (RunOptions::stop), 0 when it ran out
  std::string stop_reason;       // a stage's StopRun: "node 'id', case 'id': message"
  // Whole-run steps that failed after the cases (a stage's close() or after_run(), such as the
  // report page): the run's products are incomplete even when every case is ok.
  std::vector<std::string> run_errors;
  // What stages recorded about themselves (StageContext::note): node id -> key -> value.
  std::map<std::string, std::map<std::string, std::string>> node_notes;
  // What each node's calls hold (StageContext::declare; 1 core when undeclared), by node id.
  std::map<std::string, ResourceUse> node_resources;
  int most_cores_held = 0;  // the most cores granted at once (never more than `threads`)
};

// The cores this process may run on (its affinity mask, which taskset, Slurm and container
// cpusets narrow), at least 1: what `threads = 0` means.
int available_cores();

// One stage call under the executor's error rules: a failed case passes through untouched; an
// exception (its first lines, without LibTorch's backtrace) or a null result marks the returned
// copy failed with {node_id, message}. Never throws.
CasePtr call_stage(Stage& stage, const std::string& node_id, const CasePtr& in);
// The same, then the fields the stage declares it consumes (StageDescription::consumes) are
// removed from a successful result (a copy: `in` is never changed). The executor and the stage
// harness call this one; stages do not erase what they consume themselves.
CasePtr call_stage(Stage& stage, const std::string& node_id, const CasePtr& in,
                   const std::vector<std::string>& consumes);

// Opens every stage, runs all cases (of the shard), closes the stages, writes OUTPUT/run.json (a
// shard: its record) and calls the stages' after_run (not for a shard). Throws RunError when the
// output folder is in use, a stage cannot open or the source cannot enumerate; case failures are
// in the report.
RunReport run_graph(const GraphSpec& graph, const Registry& registry, const RunOptions& options);

}  // namespace spineparse
