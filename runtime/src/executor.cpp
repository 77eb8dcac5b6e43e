#include "spineparse/executor.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <tbb/flow_graph.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "output_folder.hpp"
#include "resource_gate.hpp"
#include "spineparse/files.hpp"
#include "spineparse/text.hpp"
#include "spineparse/vector_state.hpp"

namespace spineparse {
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string first_lines(const std::string& s, std::size_t max_chars = 2000) {
  // LibTorch errors carry long backtraces; the first lines say what went wrong.
  std::string out = s.substr(0, max_chars);
  auto bt = out.find("\nException raised from");
  if (bt != std::string::npos) out = out.substr(0, bt);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

int thread_slot() {
  static std::atomic<int> next{0};
  thread_local int slot = next.fetch_add(1);
  return slot;
}

// The width of the terminal on stderr (80 when it does not say), at least 20.
std::size_t terminal_columns() {
  struct winsize ws {};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return std::max<std::size_t>(20, ws.ws_col);
  return 80;
}

std::string format_eta(double s) {
  if (!(s >= 0) || s > 1e7) return "--";
  int t = static_cast<int>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%dh%02dm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%dm%02ds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%ds", t);
  return buf;
}

class Progress {
 public:
  Progress(const RunOptions& o, std::size_t total, std::size_t skipped)
      : total_(total), done_(skipped), skipped_(skipped), start_(Clock::now()) {
    mode_ = o.progress;
    if (mode_ == "auto") mode_ = ::isatty(STDERR_FILENO) ? "live" : "plain";
    interval_ = mode_ == "live" ? 0.25 : o.progress_interval_s;
    last_ = start_;
  }
  void case_done(bool failed) {
    ++done_;
    ++processed_;
    if (failed) ++failed_;
    if (mode_ == "none") return;
    if (since(last_) >= interval_ || done_ == total_) {
      last_ = Clock::now();
      print(done_ == total_);
    }
  }
  void finish() {
    if (mode_ == "live") std::fputc('\n', stderr);
  }

 private:
  void print(bool final_line) {
    const double el = since(start_);
    const double rate = processed_ > 0 ? processed_ / el : 0.0;
    const double eta = rate > 0 ? (total_ - done_) / rate : -1;
    char buf[256];
    std::snprintf(buf, sizeof buf, "cases %zu/%zu  failed %zu%s  %.2f cases/s  elapsed %s  ETA %s",
                  done_, total_, failed_,
                  skipped_ ? (" skipped " + std::to_string(skipped_)).c_str() : "", rate,
                  format_eta(el).c_str(), final_line ? "0s" : format_eta(eta).c_str());
    if (mode_ == "live") {  // one line that fits the terminal, overwritten in place
      std::string line = buf;
      const std::size_t width = terminal_columns();
      if (line.size() >= width) {  // the essentials: done/total, failures, ETA
        char brief[96];
        std::snprintf(brief, sizeof brief, "%zu/%zu fail %zu ETA %s", done_, total_, failed_,
                      final_line ? "0s" : format_eta(eta).c_str());
        line = brief;
      }
      if (line.size() >= width) line.resize(width - 1);
      std::fprintf(stderr, "\r%-*s", static_cast<int>(width - 1), line.c_str());
    } else {
      std::fprintf(stderr, "[progress] %s\n", buf);
    }
    std::fflush(stderr);
  }
  std::string mode_;
  std::size_t total_, done_, skipped_, processed_ = 0, failed_ = 0;
  double interval_;
  Clock::time_point start_, last_;
};

// Counts a stage call as running for its lifetime (StageContext::running_calls).
struct Running {
  std::atomic<int>& n;
  explicit Running(std::atomic<int>& c) : n(c) { ++n; }
  ~Running() { --n; }
};

// The grant of the stage call running on this thread (StageContext::granted_cores): asking for
// it lets an elastic grant grow.
struct ThreadGrant {
  ResourceGate* gate = nullptr;
  ResourceGate::Grant* grant = nullptr;
  // The call's device scopes (StageContext::hold_device), seconds since the run's start.
  std::vector<std::pair<double, double>>* device_held = nullptr;
  const Clock::time_point* t0 = nullptr;
  bool in_scope = false;
};
thread_local ThreadGrant t_grant;
struct GrantedOnThisThread {
  ThreadGrant before;
  GrantedOnThisThread(ResourceGate& gate, ResourceGate::Grant& g,
                      std::vector<std::pair<double, double>>& held, const Clock::time_point& t0)
      : before(t_grant) {
    t_grant = {&gate, &g, &held, &t0, false};
  }
  ~GrantedOnThisThread() { t_grant = before; }
};
int granted_cores_now() {
  if (!t_grant.grant) return 0;
  t_grant.gate->grow(*t_grant.grant);
  return t_grant.grant->cores;
}
// StageContext::hold_device: the device of a device_in_scopes call, held until the token goes.
std::shared_ptr<void> hold_device_now() {
  ThreadGrant* t = &t_grant;
  if (!t->grant || t->grant->scoped_device.empty()) return {};
  if (t->in_scope) throw std::logic_error("hold_device: scopes do not nest");
  t->gate->hold_device(t->grant->scoped_device);
  t->in_scope = true;
  const double start = since(*t->t0);
  return std::shared_ptr<void>(nullptr, [t, start, g = *t](void*) {
    g.device_held->emplace_back(start, since(*g.t0));  // before another call can take it
    g.gate->release_device(g.grant->scoped_device);
    t->in_scope = false;
  });
}

// A stage's StopRun on this thread (call_stage sets it, the executor's call takes it).
thread_local std::string t_stop_run;

}  // namespace

CasePtr call_stage(Stage& stage, const std::string& node_id, const CasePtr& in) {
  if (in->failed()) return in;
  std::string error;
  CasePtr out;
  try {
    out = stage.process(in);
    if (!out) error = "stage returned no case";
  } catch (const StopRun& e) {
    error = first_lines(e.what());
    if (error.empty()) error = "the stage stopped the run";
    t_stop_run = error;
  } catch (const std::exception& e) {
    error = first_lines(e.what());
    if (error.empty()) error = "exception without message";
  } catch (...) {
    error = "unknown exception";
  }
  clear_upper_vector_state();  // whatever the stage's code left, the next call runs at speed
  if (error.empty()) return out;
  auto failed = in->derive();
  failed->fail(node_id, error);
  return failed;
}

CasePtr call_stage(Stage& stage, const std::string& node_id, const CasePtr& in,
                   const std::vector<std::string>& consumes) {
  CasePtr out = call_stage(stage, node_id, in);
  if (out->failed() || consumes.empty()) return out;
  bool any = false;
  for (const auto& f : consumes) any |= out->has(f);
  if (!any) return out;
  auto trimmed = out->derive();
  for (const auto& f : consumes) trimmed->erase(f);
  return trimmed;
}

namespace {

struct OpenStages {
  std::vector<std::unique_ptr<Stage>> stages;
  std::vector<StageContext> contexts;
  // What each node's calls hold, as declared in open() (StageContext::declare).
  std::shared_ptr<std::vector<ResourceUse>> uses = std::make_shared<std::vector<ResourceUse>>();
  std::vector<std::vector<std::string>> consumes;  // per node, as its kind declares
};

// Creates and opens every stage. A failure here stops the run: nothing could succeed.
OpenStages open_stages(const GraphSpec& graph, const Registry& registry, const RunOptions& options,
                       RunReport& report, std::atomic<int>& running_calls,
                       std::mutex& notes_mutex) {
  OpenStages open;
  for (const auto& n : graph.nodes) {
    StageContext ctx;
    ctx.running_calls = [&running_calls] { return running_calls.load(std::memory_order_relaxed); };
    ctx.note = [&report, &notes_mutex, id = n.id](const std::string& key, const std::string& v) {
      std::lock_guard<std::mutex> lock(notes_mutex);
      report.node_notes[id][key] = v;
    };
    open.uses->push_back(ResourceUse{});
    // A plugin built for ABI 2.5 or older has no device_in_scopes (its padding is not ours).
    ctx.declare = [uses = open.uses, i = open.uses->size() - 1,
                   scopes = registry.abi_minor_of(n.stage) >= 6](const ResourceUse& u) {
      (*uses)[i] = u;
      if (!scopes) (*uses)[i].device_in_scopes = false;
    };
    ctx.granted_cores = granted_cores_now;
    ctx.hold_device = hold_device_now;
    ctx.node_id = n.id;
    ctx.input_dir = options.input_dir;
    ctx.output_dir = options.output_dir;
    ctx.threads_per_case_before_2_7 = report.threads_per_case;
    ctx.total_threads = report.threads;
    open.contexts.push_back(ctx);
    try {
      open.stages.push_back(registry.create(n.stage, n.params));
      const StageDescription* d = registry.find(n.stage);
      open.consumes.push_back(d ? d->consumes : std::vector<std::string>{});
      open.stages.back()->open(ctx);
    } catch (const std::exception& e) {
      throw RunError("node '" + n.id + "' (" + n.stage +
                     ") failed to open: " + first_lines(e.what()));
    } catch (...) {
      throw RunError("node '" + n.id + "' (" + n.stage + ") failed to open");
    }
    report.node_resources[n.id] = open.uses->back();
    report.node_notes[n.id]["resources"] = open.uses->back().describe();
  }
  return open;
}

// The records of earlier runs into this output folder, by case id: the shard's own record
// first (a sharded run), then OUTPUT/run.json; empty when there is none.
std::map<std::string, json> earlier_records(const RunOptions& options) {
  std::map<std::string, json> out;
  std::vector<std::string> paths;
  if (options.shard.active()) paths.push_back(shard_record_path(options.output_dir, options.shard));
  paths.push_back((fs::path(options.output_dir) / "run.json").string());
  for (const auto& path : paths) {
    try {
      const json run = json::parse(read_file(path));
      for (const auto& c : run.at("cases")) out.emplace(c.at("id").get<std::string>(), c);
    } catch (const std::exception&) {
    }
  }
  return out;
}

// A skipped case keeps what the run that made its outputs recorded: stage times, metrics,
// attributes, warnings and the stages' records, and that run's status as attribute
// earlier_status.
void carry_over(const json& earlier, CaseOutcome& oc) {
  const std::string status = earlier.value("status", "");
  const std::string before = status == "skipped" && earlier.contains("attrs")
                                 ? earlier["attrs"].value("earlier_status", "ok")
                                 : status;
  if (earlier.contains("stage_seconds"))
    for (const auto& [node, sec] : earlier["stage_seconds"].items())
      if (sec.is_number()) oc.timings.push_back({node, sec.get<double>()});
  if (earlier.contains("metrics"))
    for (const auto& [k, v] : earlier["metrics"].items())
      if (v.is_number()) oc.metrics[k] = v.get<double>();
  if (earlier.contains("attrs"))
    for (const auto& [k, v] : earlier["attrs"].items())
      if (v.is_string() && !oc.attrs.count(k)) oc.attrs[k] = v.get<std::string>();
  for (const auto& [k, v] : earlier.items())  // the stages' records ("record:KEY" attributes)
    if (v.is_object() && k != "stage_seconds" && k != "metrics" && k != "attrs" && k != "error")
      oc.attrs.emplace(kRecordAttrPrefix + k, v.dump());
  oc.attrs["earlier_status"] = before;
}

// The cases of this run, in the source's order: all of them, or the shard's part.
std::vector<CaseSeed> enumerate_cases(const GraphSpec& graph, const OpenStages& open,
                                      const RunOptions& options, RunReport& report,
                                      std::vector<std::size_t>& cohort_index) {
  std::vector<CaseSeed> all;
  try {
    all = open.stages[0]->enumerate(open.contexts[0]);
  } catch (const std::exception& e) {
    throw RunError("source node '" + graph.nodes[0].id +
                   "' cannot list cases: " + first_lines(e.what()));
  }
  if (options.filter_seeds) all = options.filter_seeds(std::move(all));
  report.cohort_cases = all.size();
  std::vector<std::string> ids;
  for (const auto& s : all) ids.push_back(s.id);
  cohort_index = shard_members(ids, options.shard);
  std::vector<CaseSeed> mine;
  for (std::size_t i : cohort_index) mine.push_back(std::move(all[i]));
  return mine;
}

// The cases of the run, with a record each in the report; with --resume, those whose outputs
// from every stage exist are marked skipped (returned true) and keep their earlier record.
std::vector<bool> list_cases(const GraphSpec& graph, const Registry& registry,
                             const OpenStages& open, const RunOptions& options,
                             std::vector<CaseSeed>& seeds, RunReport& report) {
  std::vector<std::size_t> cohort_index;
  seeds = enumerate_cases(graph, open, options, report, cohort_index);
  report.cases.resize(seeds.size());
  std::vector<bool> skip(seeds.size(), false);
  const auto earlier = options.resume ? earlier_records(options) : std::map<std::string, json>{};
  for (std::size_t i = 0; i < seeds.size(); ++i) {
    auto& oc = report.cases[i];
    oc.id = seeds[i].id;
    oc.index = cohort_index[i];
    oc.attrs = seeds[i].attrs;
    if (auto why = seeds[i].attrs.find(kSkippedAttr);
        why != seeds[i].attrs.end() && !why->second.empty()) {
      skip[i] = true;  // the source lists it but will not run it (attr "skipped": why)
      oc.status = "skipped";
      ++report.skipped;
      continue;
    }
    if (!options.resume) continue;
    std::vector<std::string> outs;
    for (std::size_t s = 0; s < open.stages.size(); ++s) {
      auto o = open.stages[s]->outputs_for(seeds[i], open.contexts[s]);
      outs.insert(outs.end(), o.begin(), o.end());
    }
    // Each output is verified (readable, complete), not merely found: a damaged one reruns the
    // case.
    bool complete = !outs.empty();
    for (const auto& o : outs) {
      if (!complete) break;
      const std::string problem = registry.check_output(o);
      complete = problem.empty();
      if (!complete && problem != "missing")
        std::fprintf(stderr, "resume: case %s runs again: %s is not a complete output (%s)\n",
                     seeds[i].id.c_str(), o.c_str(), problem.c_str());
    }
    if (complete) {
      skip[i] = true;
      oc.status = "skipped";
      ++report.skipped;
      if (auto e = earlier.find(oc.id); e != earlier.end()) carry_over(e->second, oc);
    }
  }
  return skip;
}

// The flow graph of one run: source -> limiter -> one function_node per stage -> completion.
// Collects spans and the in-flight log while the cases stream.
class CaseStream {
 public:
  CaseStream(const GraphSpec& graph, OpenStages& open, const RunOptions& options, RunReport& report,
             std::atomic<int>& running_calls)
      : graph_(graph),
        open_(open),
        options_(options),
        report_(report),
        running_calls_(running_calls),
        gate_(report.threads) {}

  void run(const std::vector<CaseSeed>& seeds, const std::vector<bool>& skip) {
    t0_ = Clock::now();
    report_.started_s = std::chrono::duration<double>(t0_.time_since_epoch()).count();
    Progress progress(options_, seeds.size(), report_.skipped);
    progress_ = &progress;
    // The whole flow graph lives in an arena of exactly `threads` workers (the default arena has
    // one per core and cannot be widened by global_control).
    tbb::task_arena arena(report_.threads);
    arena.execute([&] { stream(seeds, skip); });
    progress.finish();
    report_.wall_s = since(t0_);
    std::sort(spans_.begin(), spans_.end(),
              [](const Span& a, const Span& b) { return a.start_s < b.start_s; });
    for (const auto& sp : spans_)
      report_.cases[sp.case_index].timings.push_back({sp.node, sp.end_s - sp.start_s});
    report_.spans = std::move(spans_);
    report_.most_cores_held = gate_.most_held();
    report_.in_flight = std::move(in_flight_log_);
  }

 private:
  using Node = tbb::flow::function_node<CasePtr, CasePtr>;

  void stream(const std::vector<CaseSeed>& seeds, const std::vector<bool>& skip) {
    tbb::flow::graph g;
    std::size_t next = 0;
    tbb::flow::input_node<CasePtr> source(g, [&](tbb::flow_control& fc) -> CasePtr {
      while (next < seeds.size() && skip[next]) ++next;
      if (next >= seeds.size() || (options_.stop && options_.stop->load() != 0) || halted_) {
        fc.stop();
        return nullptr;
      }
      auto c = std::make_shared<Case>(seeds[next].id, report_.cases[next].index);
      for (const auto& [k, v] : seeds[next].attrs) c->set_attr(k, v);
      ++next;
      return c;
    });
    tbb::flow::limiter_node<CasePtr> limiter(g, static_cast<std::size_t>(graph_.max_in_flight));
    std::vector<std::unique_ptr<Node>> nodes;
    for (std::size_t i = 0; i < graph_.nodes.size(); ++i) {
      const NodeSpec& n = graph_.nodes[i];
      const std::size_t conc = n.concurrency == 0 ? std::size_t{tbb::flow::unlimited}
                                                  : static_cast<std::size_t>(n.concurrency);
      Stage* stage = open_.stages[i].get();
      nodes.push_back(std::make_unique<Node>(
          g, conc, [this, stage, i](const CasePtr& in) { return call(*stage, i, in); }));
    }
    tbb::flow::function_node<CasePtr, tbb::flow::continue_msg> complete(
        g, tbb::flow::serial, [&](const CasePtr& c) {
          // A case's limiter slot is released once, when its last branch has delivered it.
          if (record(c)) limiter.decrementer().try_put(tbb::flow::continue_msg());
          return tbb::flow::continue_msg{};
        });
    std::map<std::string, std::size_t> pos;
    for (std::size_t i = 0; i < graph_.nodes.size(); ++i) pos[graph_.nodes[i].id] = i;
    tbb::flow::make_edge(source, limiter);
    tbb::flow::make_edge(limiter, *nodes[0]);
    for (std::size_t i = 0; i < graph_.nodes.size(); ++i) {
      for (const auto& o : graph_.nodes[i].outputs) tbb::flow::make_edge(*nodes[i], *nodes[pos[o]]);
      if (graph_.nodes[i].outputs.empty()) tbb::flow::make_edge(*nodes[i], complete);
    }
    source.activate();
    g.wait_for_all();
  }

  // One stage call of one case (the body of node i): its resources granted, run isolated, timed.
  CasePtr call(Stage& stage, std::size_t i, const CasePtr& in) {
    if (i == 0) log_in_flight(++in_flight_);
    if (in->failed()) return in;  // passed on untouched, no span
    if (i == 0 && halted_) {  // taken from the source before a stage stopped the run
      std::lock_guard<std::mutex> lk(mu_);
      never_started_.insert(slot(in->index()));
      auto skipped = in->derive();
      skipped->fail(graph_.nodes[i].id, "not run: the run was stopped");
      return skipped;
    }
    const double asked = since(t0_);
    ResourceGate::Grant grant = gate_.acquire((*open_.uses)[i], i);
    const double start = since(t0_);
    CasePtr out;
    std::vector<std::pair<double, double>> device_held;
    {
      GrantedOnThisThread granted(gate_, grant, device_held, t0_);
      Running running(running_calls_);
      tbb::this_task_arena::isolate(
          [&] { out = call_stage(stage, graph_.nodes[i].id, in, open_.consumes[i]); });
    }
    const double end = since(t0_);  // before the release: a call granted these cores starts later
    gate_.release(grant, i);
    if (!grant.device.empty()) device_held = {{start, end}};
    std::lock_guard<std::mutex> lk(mu_);
    if (!t_stop_run.empty()) {
      if (!halted_)
        report_.stop_reason = "node '" + graph_.nodes[i].id + "', case '" + in->id() + "': " +
                              t_stop_run;
      halted_ = true;
      t_stop_run.clear();
    }
    spans_.push_back({graph_.nodes[i].id, slot(in->index()), start, end, thread_slot(), asked,
                      grant.cores, grant.device.empty() ? grant.scoped_device : grant.device,
                      std::move(device_held)});
    return out;
  }

  // A case leaving a leaf. With several leaves it completes when every branch delivered it; the
  // first failure seen on any branch is the one reported. Returns whether the case completed.
  bool record(const CasePtr& c) {
    const std::size_t idx = slot(c->index());
    if (graph_.leaf_ids.size() > 1) {
      if (++arrivals_[idx] < graph_.leaf_ids.size()) {
        if (c->failed() && !first_failure_.count(idx)) first_failure_[idx] = c;
        return false;
      }
      arrivals_.erase(idx);
    }
    CasePtr rec = c;
    if (!c->failed() && first_failure_.count(idx)) rec = first_failure_[idx];
    first_failure_.erase(idx);
    bool never_started;
    {
      std::lock_guard<std::mutex> lk(mu_);
      never_started = never_started_.erase(idx) > 0;
    }
    if (never_started) {  // left "not_run"
      log_in_flight(--in_flight_);
      return true;
    }
    auto& oc = report_.cases[idx];
    oc.status = rec->failed() ? "failed" : "ok";
    if (rec->failed()) {
      oc.error_node = rec->error()->node;
      oc.error = rec->error()->message;
    }
    oc.metrics = rec->metrics();
    for (const auto& [k, v] : rec->attrs()) oc.attrs[k] = v;
    progress_->case_done(rec->failed());
    log_in_flight(--in_flight_);
    rec.reset();
    if (options_.after_case)
      options_.after_case();  // the caller's record goes when the body returns
    return true;
  }

  // The report's entry of the case with cohort index `index` (entries are in cohort order).
  std::size_t slot(std::size_t index) const {
    const auto it =
        std::lower_bound(report_.cases.begin(), report_.cases.end(), index,
                         [](const CaseOutcome& oc, std::size_t i) { return oc.index < i; });
    return static_cast<std::size_t>(it - report_.cases.begin());
  }

  void log_in_flight(int now) {
    std::lock_guard<std::mutex> lk(mu_);
    in_flight_log_.emplace_back(since(t0_), now);
  }

  const GraphSpec& graph_;
  OpenStages& open_;
  const RunOptions& options_;
  RunReport& report_;
  std::atomic<int>& running_calls_;
  ResourceGate gate_;
  Progress* progress_ = nullptr;
  Clock::time_point t0_;
  std::mutex mu_;  // spans_ and in_flight_log_
  std::vector<Span> spans_;
  std::vector<std::pair<double, int>> in_flight_log_;
  std::atomic<int> in_flight_{0};
  std::atomic<bool> halted_{false};  // a stage threw StopRun: no new case starts
  std::set<std::size_t> never_started_;  // cases the source gave out after that (under mu_)
  std::map<std::size_t, std::size_t> arrivals_;  // completion node only (serial)
  std::map<std::size_t, CasePtr> first_failure_;
};

// One case's entry in run.json.
json case_record(const CaseOutcome& oc) {
  json c = {{"id", oc.id}, {"index", oc.index}, {"status", oc.status}};
  if (oc.status == "failed") c["error"] = {{"node", oc.error_node}, {"message", oc.error}};
  json t = json::object();
  for (const auto& st : oc.timings) t[st.node] = st.seconds;
  c["stage_seconds"] = t;
  if (!oc.metrics.empty()) c["metrics"] = oc.metrics;
  if (auto w = oc.attrs.find(kWarningsAttr); w != oc.attrs.end()) {
    json list = json::array();
    std::istringstream lines(w->second);
    for (std::string line; std::getline(lines, line);) list.push_back(line);
    c["warnings"] = list;
  }
  json attrs = json::object();
  const std::string record = kRecordAttrPrefix;
  for (const auto& [k, v] : oc.attrs) {
    if (k.rfind(record, 0) != 0) {
      attrs[k] = v;
      continue;
    }
    try {
      c[k.substr(record.size())] = json::parse(v);
    } catch (const json::exception&) {
      attrs[k] = v;  // not JSON: kept as text, where it can be read
    }
  }
  c["attrs"] = attrs;
  return c;
}

// run.json: what ran, with which plugins, and what happened to every case.
json run_record(const GraphSpec& graph, const Registry& registry, const RunOptions& options,
                const RunReport& report) {
  // Paths are recorded absolute: merge and --resume may run from another folder.
  auto absolute = [](const std::string& p) {
    std::error_code ec;
    const auto a = p.empty() ? std::filesystem::path() : std::filesystem::absolute(p, ec);
    return ec || p.empty() ? p : a.lexically_normal().string();
  };
  json j;
  j["spineparse_run"] = 1;
  j["graph_file"] = absolute(graph.path);
  j["graph"] = json::parse(graph.resolved_json);
  json plugins = json::array();
  for (const auto& p : registry.plugins()) {
    plugins.push_back({{"name", p.name}, {"version", p.version}, {"path", p.path}});
  }
  j["plugins"] = plugins;
  j["input_dir"] = absolute(options.input_dir);
  j["output_dir"] = absolute(options.output_dir);
  j["host"] = host_name();
  j["started_at"] = utc_time(report.started_at);
  j["finished_at"] = utc_time(std::time(nullptr));
  j["cohort_cases"] = report.cohort_cases;
  if (options.shard.active())
    j["shard"] = {{"index", options.shard.index},
                  {"count", options.shard.count},
                  {"source", options.shard.source}};
  j["threads"] = report.threads;
  j["threads_per_case"] = report.threads_per_case;
  j["max_in_flight"] = graph.max_in_flight;
  if (!report.node_notes.empty()) j["nodes"] = report.node_notes;
  j["wall_s"] = report.wall_s;
  const int processed = report.ok + report.failed;
  j["cases_per_s"] = report.wall_s > 0 ? processed / report.wall_s : 0.0;
  j["counts"] = {{"total", report.cases.size()},
                 {"ok", report.ok},
                 {"failed", report.failed},
                 {"skipped", report.skipped},
                 {"not_run", report.not_run}};
  if (report.stopped_by || !report.stop_reason.empty()) {
    json not_run = json::array();
    for (const auto& oc : report.cases)
      if (oc.status == "not_run") not_run.push_back(oc.id);
    j["interrupted"] = {{"signal", report.stopped_by}, {"not_run", not_run}};
    if (!report.stop_reason.empty()) j["interrupted"]["reason"] = report.stop_reason;
  }
  json cases = json::array();
  for (const auto& oc : report.cases) cases.push_back(case_record(oc));
  j["cases"] = cases;
  return j;
}

// Calls `hook` for every stage; a failure is printed and collected in `errors`, and the other
// stages' hooks still run.
void each_stage(const GraphSpec& graph, OpenStages& open, const char* what,
                const std::function<void(Stage&, const StageContext&)>& hook,
                std::vector<std::string>& errors) {
  for (std::size_t s = 0; s < open.stages.size(); ++s) {
    std::string error;
    try {
      hook(*open.stages[s], open.contexts[s]);
    } catch (const std::exception& e) {
      error = first_lines(e.what());
    } catch (...) {
      error = "unknown exception";
    }
    if (error.empty()) continue;
    errors.push_back("node '" + graph.nodes[s].id + "' failed " + what + ": " + error);
    std::fprintf(stderr, "error: %s\n", errors.back().c_str());
  }
}

}  // namespace

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

RunReport run_graph(const GraphSpec& graph, const Registry& registry, const RunOptions& options) {
  RunReport report;
  const int hw = available_cores();
  report.threads = options.threads > 0 ? options.threads : hw;
  report.threads_per_case =
      options.threads_per_case > 0
          ? options.threads_per_case
          : std::max(1,
                     report.threads / std::max(1, std::min(report.threads, graph.max_in_flight)));
  tbb::global_control tbb_threads(tbb::global_control::max_allowed_parallelism,
                                  static_cast<std::size_t>(report.threads));
  fs::create_directories(options.output_dir);
  const OutputLock lock(options.output_dir, options.shard);
  report.started_at = std::time(nullptr);
  if (const int n = remove_stale_temporaries(options.output_dir))
    std::fprintf(stderr, "removed %d temporary file(s) left in %s by an interrupted run\n", n,
                 options.output_dir.c_str());

  std::atomic<int> running_calls{0};  // stage calls in process() now, for StageContext::threads_now
  std::mutex notes_mutex;             // StageContext::note
  const auto open_start = Clock::now();
  OpenStages open = open_stages(graph, registry, options, report, running_calls, notes_mutex);
  report.open_s = since(open_start);
  std::vector<CaseSeed> seeds;
  const std::vector<bool> skip = list_cases(graph, registry, open, options, seeds, report);
  CaseStream(graph, open, options, report, running_calls).run(seeds, skip);
  each_stage(
      graph, open, "to close", [](Stage& s, const StageContext&) { s.close(); }, report.run_errors);
  report.stopped_by = options.stop ? options.stop->load() : 0;
  for (auto& oc : report.cases) {
    if (oc.status.empty()) oc.status = "not_run";  // never started: the run was stopped
    if (oc.status == "ok") ++report.ok;
    if (oc.status == "failed") ++report.failed;
    if (oc.status == "not_run") ++report.not_run;
  }
  report.run_json_path = options.shard.active()
                             ? shard_record_path(options.output_dir, options.shard)
                             : (fs::path(options.output_dir) / "run.json").string();
  write_file_atomic(report.run_json_path,
                    json_text(run_record(graph, registry, options, report), 2) + "\n");
  if (!options.shard.active())  // a shard's part is combined by `spineparse merge`
    each_stage(
        graph, open, "after the run",
        [&](Stage& s, const StageContext& ctx) { s.after_run(report.run_json_path, ctx); },
        report.run_errors);
  open.stages.clear();
  return report;
}

}  // namespace spineparse
