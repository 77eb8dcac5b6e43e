// Stage: the unit of work in a graph. A plugin registers stage kinds; the runtime creates one
// Stage instance per graph node.
//
// Lifecycle, all calls made by the runtime:
//   1. the kind's factory creates the instance with resolved Params (cheap: no I/O);
//   2. open(ctx) once, before any case: load weights, open devices. A failure here stops the run;
//   3. process(case) once per case, possibly concurrently when the description allows it. Throwing
//      is fine: the runtime turns the exception into a failed case and the run goes on;
//   4. close() once, after the last case;
//   5. after_run(run.json) once, after the run's record is written (whole-run reports). A sharded
//      run skips it; `spineparse merge` calls it on a new instance that was never opened, with
//      the merged record of all shards: it may depend only on the record, ctx and the params.
// A source stage (the root of every graph) additionally enumerates the cases of a run.
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "spineparse/case.hpp"
#include "spineparse/params.hpp"

namespace spineparse {

// A case field a stage reads or writes. dtype and axes say what the array holds, e.g. "uint8"
// and "D,H,W" (D: slices, the file's third axis; H, W: the file's first two axes; C: classes).
struct FieldUse {
  std::string name;
  bool optional = false;  // read only when present (e.g. a mask)
  std::string help;
  std::string dtype;  // uint8, int64, float32, float64 ("" when any)
  std::string axes;   // comma-separated axis names, slowest first ("" when any)
};

// A case attribute (text: Case::attr) or typed value (a Payload: Case::payload) a stage reads or
// writes, declared with Registry::declare_attributes (ABI 2.7) and checked by validation as fields
// are: a read that is not optional needs a writer upstream. Attributes that more than one stage or
// tool reads have their name (and a typed value its type) in one contract header.
struct AttributeUse {
  std::string name;
  bool optional = false;  // read only when present (e.g. "warnings")
  std::string help;
  std::string type;  // "" for a text attribute; a typed value's C++ type and contract header
};

struct StageAttributes {
  std::vector<AttributeUse> reads;
  std::vector<AttributeUse> writes;
  // Writes attributes named only when it runs (a Python stage's): validation lets the nodes
  // below it read any attribute.
  bool writes_any = false;
  // For stages whose attributes depend on parameters (a writer's "output:FIELD"): given a node's
  // resolved params, fills reads and writes. Empty: `reads` and `writes` above.
  std::function<void(const Params&, std::vector<AttributeUse>& reads,
                     std::vector<AttributeUse>& writes)>
      for_params;
};

enum class Concurrency { kSerial, kParallel };

struct StageDescription {
  std::string kind;  // "io.read_dataset": plugin group, dot, stage name
  std::string summary;
  std::vector<ParamSpec> params;
  std::vector<FieldUse> reads;
  std::vector<FieldUse> writes;
  // Fields removed from the case once the stage has used them (large intermediates), so that
  // memory per case in flight stays low: the executor removes them from the stage's result;
  // validation treats them as gone downstream.
  std::vector<std::string> consumes;
  bool is_source = false;
  // What the stage allows; a node may lower parallel to serial, never the reverse.
  Concurrency concurrency = Concurrency::kParallel;
  // What the stage mainly uses ("cpu" or "gpu"), as `spineparse stages` lists it. Scheduling
  // does not read it: a stage declares what its calls hold in open() (StageContext::declare).
  std::string resource = "cpu";
  // For stages whose fields depend on parameters (a writer's `field`): given a node's resolved
  // params, returns the fields it reads and writes. Empty: `reads` and `writes` above.
  std::function<std::pair<std::vector<FieldUse>, std::vector<FieldUse>>(const Params&)> fields_for;

  // The spec of parameter `name`, or nullptr when the stage does not declare it.
  const ParamSpec* param(const std::string& name) const {
    for (const auto& p : params)
      if (p.name == name) return &p;
    return nullptr;
  }
};

// What each call of a stage holds while it runs, declared in open() (StageContext::declare);
// the executor grants it before every call and releases it after (ABI 2.3). A stage that declares
// nothing is an ordinary CPU stage: one core.
struct ResourceUse {
  // The run's cores the call holds: 1, a single-threaded CPU stage; kAllCores (or any number up
  // to the run's threads) held exclusively, with the intra-op threads set to them (a network on
  // the CPU); 0, none (the call mostly waits on a device).
  int cores = 1;
  // Elastic: at least this many of `cores` (0: exactly `cores`). The call starts with the cores
  // free at that moment (at least min_cores) instead of waiting for all of them, and takes more
  // as they free up whenever it asks threads_now() again while no other call waits for a core.
  // Networks on the CPU are elastic: they never wait behind a CPU stage and never share cores.
  int min_cores = 0;
  // A device the call holds alone, e.g. "cuda:0" (one call per device at a time); "" none.
  std::string device;
  // The calls of this node share one grant: the first call takes the cores and the device, the
  // others join it while it is held (the stage orders its own work on them, e.g. the fine network
  // batching the slices of several cases into shared passes); other nodes wait as usual.
  bool shared_by_node = false;
  // With `device`: the call holds the device only inside its StageContext::hold_device() scopes,
  // not for the whole call, so that its host work (staging inputs, copying results out) runs
  // while other calls use the device. ABI 2.6 (ignored from plugins built for an older minor).
  bool device_in_scopes = false;
  static constexpr int kAllCores = -1;
  bool exclusive_cores() const { return cores == kAllCores || cores > 1; }
  // What it holds, for reports: "1 core", "all cores", "up to all cores", "cuda:0".
  std::string describe() const {
    const bool elastic = min_cores > 0 && min_cores != cores;
    std::string s = cores == kAllCores ? "all cores"
                    : cores == 0       ? ""
                                       : std::to_string(cores) + (cores == 1 ? " core" : " cores");
    if (elastic && !s.empty()) s = "up to " + s;
    if (!device.empty())
      s += (s.empty() ? "" : " + ") + device + (device_in_scopes ? " (in scopes)" : "");
    return s.empty() ? "nothing" : s;
  }
};

// What open() gets: the run's folders and thread budget.
struct StageContext {
  std::string node_id;
  std::string input_dir;     // --input, may be empty
  std::string output_dir;    // --output
  // What plugins built for ABI 2.6 or older read as their thread budget (the run's threads over
  // the cases in flight); kept in its place for them. Use threads_now().
  int threads_per_case_before_2_7 = 1;
  int total_threads = 1;
  // The executor's count of stage calls running right now (this one included); empty outside
  // the executor (stage harness, bench replays). ABI 1.1.
  std::function<int()> running_calls;
  // Records a fact about this node under run.json's "nodes" -> node id -> key (what the stage
  // chose and why: a network's precision and device, say); may be called from open() and
  // process(), from any thread; the last value of a key wins. Empty outside the executor. ABI 2.2.
  std::function<void(const std::string& key, const std::string& value)> note;
  // Declares what every call of this node holds (see ResourceUse); call it from open(). Empty
  // outside the executor. ABI 2.3.
  std::function<void(const ResourceUse& use)> declare;
  // The cores granted to the call running on this thread (its ResourceUse, granted); empty
  // outside the executor. ABI 2.3.
  std::function<int()> granted_cores;
  // With ResourceUse::device_in_scopes: blocks until the node's device is free and holds it for
  // the calling stage call until the returned token is destroyed. Scopes do not nest, and a scope
  // holds nothing else the executor grants, so waiting in it cannot deadlock. An empty token at
  // once when the call holds its device for the whole call, declares none, or runs outside the
  // executor. ABI 2.6.
  std::function<std::shared_ptr<void>()> hold_device;

  // Intra-op threads a call may use: the cores the executor granted it (every core to a network
  // on the CPU, which holds them alone; 1 to an ordinary stage), so that nothing oversubscribes
  // the cores (an OpenMP team that loses a core stalls at every barrier). Outside the executor
  // (stage harness, bench replays): every thread the context has.
  int threads_now() const {
    if (granted_cores) return std::max(1, granted_cores());
    if (!running_calls) return total_threads;
    const int running = running_calls();
    return running > 1 ? std::max(1, total_threads / running) : total_threads;
  }
};

// Thrown by process() when no later case could succeed either (a device left in an
// unrecoverable state, say): the case fails with the message, no new case starts, the cases in
// flight finish, and the run ends with the message and the cases not run listed (RunReport::
// stop_reason; `--resume` runs them). Any other exception fails only its case. ABI 2.6.
class StopRun : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  ~StopRun() override;  // defined in the runtime: one type_info for every plugin
};

class Stage {
 public:
  virtual ~Stage();
  virtual void open(const StageContext& ctx);
  virtual CasePtr process(const CasePtr& in) = 0;
  virtual void close();

  // Source stages only: the cases of this run, in order.
  virtual std::vector<CaseSeed> enumerate(const StageContext& ctx);

  // Called once after the run, when OUTPUT/run.json (every case's status, error and stage
  // times) has been written: for reports over the whole run. Errors are printed, not fatal.
  // Also called by `spineparse merge` without open() (see the lifecycle above).
  virtual void after_run(const std::string& run_json_path, const StageContext& ctx);

  // Files this stage writes for a case; the runtime's --resume skips a case whose outputs from
  // every stage exist (writes are atomic, so existence means complete).
  virtual std::vector<std::string> outputs_for(const CaseSeed& seed, const StageContext& ctx) const;
};

using StageFactory = std::function<std::unique_ptr<Stage>(const Params&)>;

}  // namespace spineparse
