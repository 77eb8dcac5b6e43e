// spineparse bench: where the run's time went (per stage, busy and waiting), its shares of the
// machine's cores and devices, and its Chrome trace.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "bench.hpp"
#include "spineparse/files.hpp"
#include "spineparse/text.hpp"
#ifdef SPINEPARSE_WITH_TORCH
#include "nn/peak.hpp"
#endif

namespace spineparse::tools::cli::bench {
namespace fs = std::filesystem;

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

double network_busy_union(const RunReport& r) {
  const auto networks = network_nodes(r);
  std::vector<std::pair<double, double>> net_spans;
  for (const auto& s : r.spans)
    if (networks.count(s.node)) net_spans.emplace_back(s.start_s, s.end_s);
  return union_of(net_spans);
}

double first_case_s(const RunReport& r) {
  std::map<std::size_t, double> done;
  for (const auto& s : r.spans) done[s.case_index] = std::max(done[s.case_index], s.end_s);
  double first = 0;
  for (const auto& [c, t] : done) first = first == 0 ? t : std::min(first, t);
  return first;
}

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
  // A counter track's sample: `key` = `value` at t seconds.
  auto counter = [&ev](const char* name, double t, const char* key, const json& value) {
    ev.push_back(
        {{"name", name}, {"ph", "C"}, {"pid", 1}, {"ts", t * 1e6}, {"args", {{key, value}}}});
  };
  int held = 0;
  for (const auto& [t, d] : steps) counter("cores held", t, "cores", held += d);
  for (const auto& [t, _] : threads) {
    ev.push_back({{"name", "thread_name"},
                  {"ph", "M"},
                  {"pid", 1},
                  {"tid", t},
                  {"args", {{"name", "worker " + std::to_string(t)}}}});
  }
  for (const auto& [t, n] : r.in_flight) counter("cases in flight", t, "cases", n);
  for (const auto& [t, mb] : rss_samples) counter("resident memory", t, "MB", mb);
  write_file_atomic((fs::path(a.output) / "trace.json").string(),
                    json_text(json({{"traceEvents", ev}, {"displayTimeUnit", "ms"}})) + "\n");
}

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

}  // namespace spineparse::tools::cli::bench
