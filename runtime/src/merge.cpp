#include "spineparse/merge.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "output_folder.hpp"
#include "spineparse/files.hpp"
#include "spineparse/graph.hpp"
#include "spineparse/graph_draft.hpp"
#include "spineparse/registry.hpp"
#include "spineparse/stage.hpp"
#include "spineparse/text.hpp"

namespace spineparse {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct ShardRecord {
  int index = 0;
  std::string path;
  json record;
};

// The shard records in OUTPUT/shards/, by shard count (one entry unless splits were mixed).
std::map<int, std::vector<ShardRecord>> find_records(const fs::path& dir,
                                                     std::vector<std::string>& problems) {
  std::map<int, std::vector<ShardRecord>> by_count;
  static const std::regex name(R"(run-(\d{1,7})-of-(\d{1,7})\.json)");
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::smatch m;
    const std::string file = it->path().filename().string();
    if (!std::regex_match(file, m, name)) continue;
    ShardRecord r{std::stoi(m[1]), it->path().string(), {}};
    try {
      r.record = json::parse(read_file(r.path));
      (void)r.record.at("cases").size();
    } catch (const std::exception& e) {
      problems.push_back(r.path + " is not a readable shard record (" + e.what() +
                         "); run that shard again with --resume");
      continue;
    }
    by_count[std::stoi(m[2])].push_back(std::move(r));
  }
  return by_count;
}

// Every shard of the split present, agreeing with shard 0, every case run.
void check_split(int count, std::vector<ShardRecord>& shards, std::vector<std::string>& problems) {
  std::sort(shards.begin(), shards.end(),
            [](const ShardRecord& a, const ShardRecord& b) { return a.index < b.index; });
  std::vector<bool> seen(static_cast<std::size_t>(count), false);
  for (const auto& s : shards)
    if (s.index < count) seen[static_cast<std::size_t>(s.index)] = true;
  std::vector<std::string> missing;
  for (int k = 0; k < count; ++k)
    if (!seen[static_cast<std::size_t>(k)]) missing.push_back(std::to_string(k));
  if (!missing.empty())
    problems.push_back("shard(s) " + join(missing) + " of " + std::to_string(count) +
                       " have no record: run them (--shard K/" + std::to_string(count) +
                       ") and merge again");
  if (shards.empty()) return;
  const json& first = shards.front().record;
  std::map<std::size_t, int> shard_of;  // cohort index -> shard
  std::size_t total = 0;
  for (const auto& s : shards) {
    total += s.record["cases"].size();
    for (const auto& c : s.record["cases"]) {
      const auto [it, added] = shard_of.emplace(c.value("index", std::size_t{0}), s.index);
      if (!added)
        problems.push_back("case " + c.value("id", "?") + " is in shard " +
                           std::to_string(it->second) + " and shard " + std::to_string(s.index) +
                           ": the input changed between shards");
    }
  }
  if (missing.empty() && total != first.value("cohort_cases", total))
    problems.push_back("the shards hold " + std::to_string(total) + " cases but the cohort has " +
                       std::to_string(first.value("cohort_cases", total)) +
                       ": the input changed between shards");
  for (const auto& s : shards) {
    for (const char* key : {"graph", "input_dir", "cohort_cases"})
      if (s.record.value(key, json()) != first.value(key, json()))
        problems.push_back(s.path + " and " + shards.front().path + " differ in '" + key +
                           "': they are not shards of one run");
    for (const auto& c : s.record["cases"])
      if (c.value("status", "") == "not_run" || c.value("status", "").empty())
        problems.push_back("case " + c.value("id", "?") + " (shard " + std::to_string(s.index) +
                           ") did not run: run that shard again with --resume");
  }
}

json shard_summary(const ShardRecord& s) {
  const json& r = s.record;
  return {{"index", s.index},
          {"record", fs::path(s.path).filename().string()},
          {"host", r.value("host", "")},
          {"started_at", r.value("started_at", "")},
          {"finished_at", r.value("finished_at", "")},
          {"wall_s", r.value("wall_s", 0.0)},
          {"threads", r.value("threads", 0)},
          {"cases_per_s", r.value("cases_per_s", 0.0)},
          {"counts", r.value("counts", json::object())}};
}

// The record one process would have written for the whole cohort.
json merged_record(const std::vector<ShardRecord>& shards, const std::string& output_dir,
                   MergeReport& report) {
  const json& first = shards.front().record;
  json j = {{"spineparse_run", 1}};
  for (const char* key : {"graph_file", "graph", "plugins", "input_dir"})
    j[key] = first.value(key, json());
  j["output_dir"] = output_dir;
  json cases = json::array(), list = json::array();
  std::time_t start = -1, finish = -1;
  double busiest = 0;
  for (const auto& s : shards) {
    list.push_back(shard_summary(s));
    for (json c : s.record["cases"]) {
      c["shard"] = s.index;
      cases.push_back(std::move(c));
    }
    const std::time_t a = parse_utc_time(s.record.value("started_at", ""));
    const std::time_t b = parse_utc_time(s.record.value("finished_at", ""));
    if (a >= 0 && (start < 0 || a < start)) start = a;
    if (b >= 0 && b > finish) finish = b;
    busiest = std::max(busiest, s.record.value("wall_s", 0.0));
  }
  std::stable_sort(cases.begin(), cases.end(), [](const json& a, const json& b) {
    return a.value("index", 0) < b.value("index", 0);
  });
  for (const auto& c : cases) {
    const std::string st = c.value("status", "");
    report.ok += st == "ok";
    report.failed += st == "failed";
    report.skipped += st == "skipped";
  }
  report.cases = cases.size();
  // Wall time from the first shard's start to the last one's end (1 s resolution), at least the
  // longest shard's.
  const double wall =
      std::max(busiest, start >= 0 && finish >= start ? double(finish - start) : 0.0);
  if (start >= 0) j["started_at"] = utc_time(start);
  if (finish >= 0) j["finished_at"] = utc_time(finish);
  j["wall_s"] = wall;
  j["cases_per_s"] = wall > 0 ? (report.ok + report.failed) / wall : 0.0;
  j["cohort_cases"] = first.value("cohort_cases", cases.size());
  j["counts"] = {{"total", cases.size()},
                 {"ok", report.ok},
                 {"failed", report.failed},
                 {"skipped", report.skipped},
                 {"not_run", 0}};
  j["shards"] = list;
  j["cases"] = cases;
  return j;
}

// The plugins the shards ran with, where this process has not loaded one of that name.
void load_recorded_plugins(const json& record, Registry& registry, MergeReport& report) {
  for (const auto& p : record.value("plugins", json::array())) {
    const std::string name = p.value("name", ""), path = p.value("path", "");
    const auto& loaded = registry.plugins();
    if (std::any_of(loaded.begin(), loaded.end(),
                    [&](const PluginInfo& i) { return i.name == name; }))
      continue;
    try {
      registry.load_plugin(path);
    } catch (const std::exception& e) {
      report.run_errors.push_back("plugin " + name + " the shards used: " + e.what() +
                                  " (give its folder with --plugin-dir)");
    }
  }
}

// Each node's after_run on the merged record, from new stage instances (never opened).
void run_after_hooks(const json& record, const std::string& output_dir, Registry& registry,
                     MergeReport& report) {
  load_recorded_plugins(record, registry, report);
  GraphLoad g;
  try {
    const auto draft =
        GraphDraft::from_text(record["graph"].dump(), record.value("graph_file", ""));
    g = load_graph(draft, registry);
  } catch (const std::exception& e) {
    g.issues.push_back({"unreadable", "", e.what()});
  }
  if (!g.ok()) {
    for (const auto& i : g.issues)
      report.run_errors.push_back("the recorded graph: " + i.to_string());
    return;
  }
  for (const auto& n : g.graph->nodes) {
    StageContext ctx;
    ctx.node_id = n.id;
    ctx.input_dir = record.value("input_dir", "");
    ctx.output_dir = output_dir;
    try {
      registry.create(n.stage, n.params)->after_run(report.run_json_path, ctx);
    } catch (const std::exception& e) {
      report.run_errors.push_back("node '" + n.id + "' failed after the run: " + e.what());
    }
  }
}

}  // namespace

MergeReport merge_shards(const std::string& output_dir, Registry& registry) {
  MergeReport report;
  const fs::path dir = fs::path(output_dir) / "shards";
  if (!fs::is_directory(dir)) {
    report.problems.push_back("no shard records: " + dir.string() +
                              " does not exist (run with --shard K/N or --shard auto first)");
    return report;
  }
  const OutputLock lock(output_dir, Shard{});
  auto by_count = find_records(dir, report.problems);
  if (by_count.empty() && report.problems.empty())
    report.problems.push_back("no shard records (run-K-of-N.json) in " + dir.string());
  if (by_count.size() > 1) {
    const std::string counts = join(by_count, ", ", [](const auto& split) {
      return std::to_string(split.second.size()) + " record(s) of a " +
             std::to_string(split.first) + "-shard split";
    });
    report.problems.push_back("the shard records belong to different splits (" + counts +
                              "): remove the records of the split you abandoned from " +
                              dir.string());
  }
  if (by_count.size() != 1) return report;
  auto& [count, shards] = *by_count.begin();
  report.shards = count;
  check_split(count, shards, report.problems);
  if (!report.problems.empty()) return report;
  const json record = merged_record(shards, output_dir, report);
  report.run_json_path = (fs::path(output_dir) / "run.json").string();
  write_file_atomic(report.run_json_path,
                    json_text(record, 2) + "\n");
  run_after_hooks(record, output_dir, registry, report);
  return report;
}

}  // namespace spineparse
