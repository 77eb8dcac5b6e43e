// Merging a sharded run: the shard records in OUTPUT/shards/ become the OUTPUT/run.json one
// process would have written for the whole cohort, and the graph's whole-run products (the
// stages' after_run: metrics summaries, report) are made from it.
#pragma once

#include <string>
#include <vector>

namespace spineparse {

class Registry;

struct MergeReport {
  std::string run_json_path;            // written only when the run is whole
  int shards = 0;                       // the split's shard count
  std::vector<std::string> problems;    // why nothing was merged (missing shards, cases, ...)
  std::vector<std::string> run_errors;  // after_run failures (products incomplete)
  std::size_t cases = 0;
  int ok = 0, failed = 0, skipped = 0;
  bool merged() const { return problems.empty(); }
};

// Reads every OUTPUT/shards/run-K-of-N.json. When all N shards are there, agree (same graph,
// input and cohort) and every case ran, writes OUTPUT/run.json (cases in cohort order, each with
// its shard; per-shard hosts, times and counts under "shards") and calls each graph node's
// after_run on it. Otherwise writes nothing and lists the problems: missing shards, cases that
// did not run (an interrupted shard), records that disagree. Idempotent. Holds the output
// folder's lock, so it is refused while a shard or another run is writing there (RunError).
MergeReport merge_shards(const std::string& output_dir, Registry& registry);

}  // namespace spineparse
