// python.stage: a user's Python function or class run on each case (docs/python.md).
//
// Reads:   the fields named in `reads`, as read-only numpy arrays sharing the case's memory.
// Writes:  the fields declared in `writes` ({"name", "dtype", "axes"}), copied out once and checked
//          against the declaration and the case's grid; metrics, attributes and warnings as the
//          code returns them.
// Params:  callable (module:function or module:Class), path, reads, writes, options (a JSON
//          object handed to the code as a dict), concurrency, timeout_s.
// Concurrency: parallel calls, at most `concurrency` inside the user's code at once.
//
//   {"id": "canal", "stage": "python.stage",
//    "params": {"callable": "my_stages.canal:CanalWidth", "path": ["python"],
//               "reads": ["image", "labels"], "options": {"min_area_mm2": 40}}}
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>

#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::python {

struct PythonOptions {
  static constexpr const char* kKind = "python.stage";
  std::string callable;
  std::vector<std::string> path;
  std::vector<std::string> reads;
  std::string writes = "[]";
  std::string options = "{}";
  int concurrency = 1;
  double timeout_s = 0;
  static void declare(ParamSet<PythonOptions>& s);
};
StageDescription python_description();

// The fields a node declares in `writes`, checked (throws std::invalid_argument naming the entry).
std::vector<FieldUse> declared_writes(const std::string& writes_json);

class PythonStage : public StageWith<PythonOptions> {
 public:
  explicit PythonStage(const Params& p);
  ~PythonStage() override;
  void open(const StageContext& ctx) override;
  CasePtr process(const CasePtr& in) override;
  void close() override;

 private:
  struct Impl;  // the Python objects and the watchdog, kept out of this header
  std::unique_ptr<Impl> impl_;
  std::vector<FieldUse> writes_;
  std::string node_;
  // At most options_.concurrency calls inside the user's code.
  std::mutex slots_mutex_;
  std::condition_variable slots_free_;
  int busy_ = 0;
};

}  // namespace spineparse::plugins::python
