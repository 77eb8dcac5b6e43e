// The executor: failure isolation, the in-flight cap, fan-out, resume, run.json.
#include <gmock/gmock.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>

#include "spineparse/executor.hpp"
#include "spineparse/files.hpp"
#include "spineparse/graph.hpp"
#include "spineparse/stage_harness.hpp"
#include "spineparse/vector_state.hpp"
#include "test_util.hpp"

using namespace spineparse;
using ::testing::HasSubstr;

namespace {

class Executor : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.load_plugin(spineparse::testing::test_plugin_dir() + "/spineparse_test.so");
  }

  RunReport run(const std::string& text, RunOptions o = {},
                const std::vector<std::string>& sets = {}) {
    auto g = load_graph_text(text, "g.json", registry_, sets);
    EXPECT_TRUE(g.ok()) << (g.issues.empty() ? "" : g.issues[0].to_string());
    o.output_dir = out_.str();
    o.progress = "none";
    return run_graph(*g.graph, registry_, o);
  }
  Registry registry_;
  spineparse::testing::TempDir out_;
};

// The most cases the test.gate stage saw at once, over the run.
double gate_max(const RunReport& r) {
  double seen = 0;
  for (const auto& c : r.cases) seen = std::max(seen, c.metrics.at("gate_max"));
  return seen;
}

}  // namespace

TEST_F(Executor, OneFailingCaseDoesNotStopTheOthers) {
  auto r = run(R"({"schema_version": 1, "max_in_flight": 2, "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 6}},
    {"id": "f", "stage": "test.fail", "params": {"ids": ["Case2", "Case5"]}},
    {"id": "after", "stage": "test.delay", "params": {"ms": 1}}]})");
  ASSERT_EQ(r.cases.size(), 6u);
  EXPECT_EQ(r.ok, 4);
  EXPECT_EQ(r.failed, 2);
  for (const auto& c : r.cases) {
    const bool should_fail = c.id == "Case2" || c.id == "Case5";
    EXPECT_EQ(c.status, should_fail ? "failed" : "ok") << c.id;
    if (should_fail) {
      EXPECT_EQ(c.error_node, "f");
      EXPECT_THAT(c.error, HasSubstr("deliberate failure of " + c.id));
      // Later stages passed the failed case through without running.
      for (const auto& t : c.timings) EXPECT_NE(t.node, "after");
    }
  }
}

TEST_F(Executor, NonStandardExceptionsAreCaughtToo) {
  auto r = run(R"({"schema_version": 1, "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 3}},
    {"id": "f", "stage": "test.fail", "params": {"ids": ["Case1"], "mode": "non_std"}}]})");
  EXPECT_EQ(r.failed, 1);
  EXPECT_EQ(r.cases[0].error, "unknown exception");
  EXPECT_EQ(r.ok, 2);
}

TEST_F(Executor, CasesInFlightNeverExceedTheCap) {
  // The gate holds up to `hold` cases; with 8 threads and unlimited stage concurrency only the
  // limiter can keep it at max_in_flight.
  const char* graph = R"({"schema_version": 1, "max_in_flight": 3, "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 24}},
    {"id": "gate", "stage": "test.gate", "params": {"hold": 8, "timeout_ms": 40}, "concurrency": "parallel"}]})";
  RunOptions o;
  o.threads = 8;
  auto r = run(graph, o);
  ASSERT_EQ(r.ok, 24);
  EXPECT_EQ(gate_max(r), 3.0);  // reached, and never exceeded
  int peak = 0;
  for (const auto& [t, n] : r.in_flight) peak = std::max(peak, n);
  EXPECT_LE(peak, 3);
}

TEST_F(Executor, TheCapHoldsWhenTheGraphFansOutToSeveralLeaves) {
  // Three leaves after the gate: a case must free its slot once, not once per leaf.
  const char* graph = R"({"schema_version": 1, "max_in_flight": 2, "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 24}},
    {"id": "gate", "stage": "test.gate", "params": {"hold": 8, "timeout_ms": 40}, "concurrency": "parallel"},
    {"id": "a", "stage": "test.delay", "params": {"ms": 1}},
    {"id": "b", "stage": "test.delay", "params": {"ms": 1}},
    {"id": "c", "stage": "test.delay", "params": {"ms": 1}}],
    "edges": [["src", "gate"], ["gate", "a"], ["gate", "b"], ["gate", "c"]]})";
  RunOptions o;
  o.threads = 8;
  auto r = run(graph, o);
  ASSERT_EQ(r.ok, 24);
  EXPECT_EQ(gate_max(r), 2.0);  // reached, and never exceeded
}

TEST_F(Executor, GateSeesMoreWhenTheCapIsHigher) {
  RunOptions o;
  o.threads = 8;
  auto r = run(R"({"schema_version": 1, "max_in_flight": 6, "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 24}},
    {"id": "gate", "stage": "test.gate", "params": {"hold": 6, "timeout_ms": 200}}]})",
               o);
  EXPECT_GT(gate_max(r), 3.0);
  EXPECT_LE(gate_max(r), 6.0);
}

// Whether two spans of the run overlap in time (by more than a millisecond).
bool overlap(const Span& a, const Span& b) {
  return std::min(a.end_s, b.end_s) - std::max(a.start_s, b.start_s) > 1e-3;
}

TEST_F(Executor, OrdinaryStageCallsHoldOneCoreEachAndRunSideBySide) {
  RunOptions o;
  o.threads = 4;
  auto r = run(R"({"schema_version": 1, "max_in_flight": 4, "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 8}},
    {"id": "gate", "stage": "test.gate", "params": {"hold": 4, "timeout_ms": 300}, "concurrency": "parallel"}]})",
               o);
  ASSERT_EQ(r.ok, 8);
  for (const auto& c : r.cases) EXPECT_EQ(c.metrics.at("gate_threads"), 1.0) << c.id;
  EXPECT_GE(gate_max(r), 2.0);
  EXPECT_EQ(r.node_resources.at("gate").describe(), "1 core");
}

// A network on the CPU (all cores, exclusively) never runs beside another stage call: not
// another network call, not an ordinary stage; and it gets every core as its threads.
TEST_F(Executor, ACallHoldingEveryCoreRunsAlone) {
  RunOptions o;
  o.threads = 4;
  auto r = run(R"({"schema_version": 1, "max_in_flight": 4, "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 8}},
    {"id": "cpu", "stage": "test.delay", "params": {"ms": 15}},
    {"id": "net", "stage": "test.gate", "params": {"hold": 2, "timeout_ms": 20, "cores": -1}, "concurrency": "parallel"},
    {"id": "after", "stage": "test.delay", "params": {"ms": 15}}]})",
               o);
  ASSERT_EQ(r.ok, 8);
  EXPECT_EQ(gate_max(r), 1.0);  // never two network calls at once
  for (const auto& c : r.cases) EXPECT_EQ(c.metrics.at("gate_threads"), 4.0) << c.id;
  EXPECT_LE(r.most_cores_held, 4);
  int cpu_pairs = 0;
  for (const auto& a : r.spans) {
    if (a.node == "net") {
      EXPECT_EQ(a.cores, 4);
      for (const auto& b : r.spans) {
        if (&a != &b && b.node != "src") {
          EXPECT_FALSE(overlap(a, b)) << a.node << " and " << b.node;
        }
      }
    }
    for (const auto& b : r.spans)
      cpu_pairs += &a < &b && a.node != "net" && b.node != "net" && a.node != "src" &&
                   b.node != "src" && overlap(a, b);
  }
  EXPECT_GT(cpu_pairs, 0);  // the ordinary stages did run side by side
  EXPECT_EQ(r.node_resources.at("net").describe(), "all cores");
}

// An elastic network (up to every core, at least one) starts with the cores free at that moment
// rather than waiting behind CPU stages, never holds a core another call holds, and gets every
// core when it runs alone.
TEST_F(Executor, AnElasticCallStartsWithTheFreeCoresAndNeverOversubscribes) {
  RunOptions o;
  o.threads = 4;
  auto r = run(R"({"schema_version": 1, "max_in_flight": 4, "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 12}},
    {"id": "cpu", "stage": "test.delay", "params": {"ms": 15}},
    {"id": "net", "stage": "test.gate", "params": {"hold": 2, "timeout_ms": 20, "cores": -1, "min_cores": 1}, "concurrency": "parallel"}]})",
               o);
  ASSERT_EQ(r.ok, 12);
  EXPECT_LE(r.most_cores_held, 4);
  double least = 99, most = 0;
  for (const auto& c : r.cases) {
    least = std::min(least, c.metrics.at("gate_threads"));
    most = std::max(most, c.metrics.at("gate_threads"));
  }
  EXPECT_GE(least, 1.0);
  EXPECT_LT(least, 4.0);  // some calls started beside others, with what was free
  EXPECT_EQ(r.node_resources.at("net").describe(), "up to all cores");
  auto alone = run(R"({"schema_version": 1, "max_in_flight": 1, "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 3}},
    {"id": "net", "stage": "test.gate", "params": {"hold": 1, "cores": -1, "min_cores": 1}}]})",
                   o);
  for (const auto& c : alone.cases) EXPECT_EQ(c.metrics.at("gate_threads"), 4.0) << c.id;
}

// A device is held by one call at a time, and CPU stages run while it is held.
TEST_F(Executor, CpuStagesRunWhileADeviceIsHeld) {
  RunOptions o;
  o.threads = 2;
  auto r = run(R"({"schema_version": 1, "max_in_flight": 4, "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 8}},
    {"id": "cpu", "stage": "test.delay", "params": {"ms": 20}},
    {"id": "gpu", "stage": "test.gate", "params": {"hold": 2, "timeout_ms": 30, "cores": 0, "device": "fake:0"}, "concurrency": "parallel"}]})",
               o);
  ASSERT_EQ(r.ok, 8);
  EXPECT_EQ(gate_max(r), 1.0);  // one call on the device at a time
  int beside = 0;
  for (const auto& a : r.spans) {
    if (a.node != "gpu") continue;
    EXPECT_EQ(a.device, "fake:0");
    EXPECT_EQ(a.cores, 0);
    for (const auto& b : r.spans) beside += b.node == "cpu" && overlap(a, b);
  }
  EXPECT_GT(beside, 0);
}

// A call that holds its device only in scopes gives it back for its host work: the device
// work of the calls never overlaps, their host work does, and the device's busy time is the
// scopes'. Held for the whole call (the default), the calls never overlap at all.
TEST_F(Executor, ADeviceHeldInScopesIsFreeDuringTheCallsHostWork) {
  auto graph = [](bool scopes) {
    return std::string(R"({"schema_version": 1, "max_in_flight": 4, "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 6}},
    {"id": "net", "stage": "test.device_work", "concurrency": "parallel",
     "params": {"host_ms": 60, "device_ms": 30, "after_ms": 60, "scopes": )") +
           (scopes ? "true" : "false") + "}}]}";
  };
  RunOptions o;
  o.threads = 4;
  for (const bool scopes : {true, false}) {
    auto r = run(graph(scopes), o);
    ASSERT_EQ(r.ok, 6) << scopes;
    int overlapping = 0;
    double held = 0, called = 0;
    std::vector<std::pair<double, double>> all;
    for (const auto& a : r.spans) {
      if (a.node != "net") continue;
      EXPECT_EQ(a.device, "fake:0");
      ASSERT_EQ(a.device_held.size(), 1u);
      called += a.end_s - a.start_s;
      held += a.device_held[0].second - a.device_held[0].first;
      all.push_back(a.device_held[0]);
      for (const auto& b : r.spans) overlapping += &a != &b && b.node == "net" && overlap(a, b);
    }
    for (const auto& c : r.cases) EXPECT_EQ(c.metrics.at("device_max"), 1.0) << c.id;
    std::sort(all.begin(), all.end());
    for (std::size_t k = 1; k < all.size(); ++k) EXPECT_GE(all[k].first, all[k - 1].second - 1e-9);
    if (scopes) {
      EXPECT_GT(overlapping, 0);
      EXPECT_LT(held, 0.5 * called);  // 30 of 150 ms per call
    } else {
      EXPECT_EQ(overlapping, 0);
      EXPECT_DOUBLE_EQ(held, called);
    }
  }
}

// StopRun fails its case and stops the run: no case starts after it, the cases in flight
// finish, the rest are not run, and run.json says why.
TEST_F(Executor, AStageThatStopsTheRunEndsItWithItsReason) {
  RunOptions o;
  o.threads = 2;
  auto r = run(R"({"schema_version": 1, "max_in_flight": 1, "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 6}},
    {"id": "net", "stage": "test.device_work", "params": {"host_ms": 1, "device_ms": 1, "after_ms": 1, "stop_on": "Case3"}}]})",
               o);
  EXPECT_EQ(r.ok, 2);
  EXPECT_EQ(r.failed, 1);
  EXPECT_EQ(r.not_run, 3);
  EXPECT_EQ(r.cases[2].status, "failed");
  EXPECT_THAT(r.cases[2].error, HasSubstr("unrecoverable"));
  EXPECT_EQ(r.stop_reason, "node 'net', case 'Case3': fake:0 is in an unrecoverable state");
  const auto j = nlohmann::json::parse(read_file(r.run_json_path));
  EXPECT_EQ(j["interrupted"]["reason"], r.stop_reason);
  EXPECT_EQ(j["interrupted"]["not_run"].size(), 3u);
}

TEST_F(Executor, FanOutDeliversEveryCaseToEveryBranchOnce) {
  auto r = run(R"({"schema_version": 1, "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 5}},
    {"id": "a", "stage": "test.delay", "params": {"ms": 2}},
    {"id": "b", "stage": "test.fail", "params": {"ids": ["Case4"]}}],
    "edges": [["src", "a"], ["src", "b"]]})");
  EXPECT_EQ(r.ok, 4);
  EXPECT_EQ(r.failed, 1);
  EXPECT_EQ(r.cases[3].error_node, "b");
  int spans_a = 0;
  for (const auto& s : r.spans) spans_a += s.node == "a";
  EXPECT_EQ(spans_a, 5);
}

TEST_F(Executor, AfterCaseRunsOncePerFinishedCaseFailedOrNot) {
  RunOptions o;
  std::atomic<int> calls{0};
  o.after_case = [&] { ++calls; };
  auto r = run(R"({"schema_version": 1, "max_in_flight": 2, "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 5}},
    {"id": "a", "stage": "test.delay", "params": {"ms": 1}},
    {"id": "b", "stage": "test.fail", "params": {"ids": ["Case2"]}}],
    "edges": [["src", "a"], ["src", "b"]]})",
               o);
  EXPECT_EQ(r.ok + r.failed, 5);
  EXPECT_EQ(calls.load(), 5);  // once per case, not once per branch
}

TEST_F(Executor, OpenFailureStopsTheRunWithTheNodeNamed) {
  auto g = load_graph_text(R"({"schema_version": 1, "nodes": [
    {"id": "src", "stage": "test.source"}, {"id": "dev", "stage": "test.fail_open"}]})",
                           "g.json", registry_);
  ASSERT_TRUE(g.ok());
  RunOptions o;
  o.output_dir = out_.str();
  o.progress = "none";
  try {
    run_graph(*g.graph, registry_, o);
    FAIL() << "expected RunError";
  } catch (const RunError& e) {
    EXPECT_THAT(e.what(),
                HasSubstr("node 'dev' (test.fail_open) failed to open: cannot open the device"));
  }
}

TEST_F(Executor, WritesRunJsonWithPluginsGraphAndPerCaseRecords) {
  auto r = run(R"({"schema_version": 1, "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 3}},
    {"id": "f", "stage": "test.fail", "params": {"ids": ["Case3"]}}]})");
  auto j = nlohmann::json::parse(read_file(r.run_json_path));
  EXPECT_EQ(j["plugins"][0]["name"], "test");
  EXPECT_EQ(j["plugins"][0]["version"], "1.2.3");
  EXPECT_EQ(j["graph"]["nodes"][1]["params"]["mode"], "std");
  EXPECT_EQ(j["counts"]["ok"], 2);
  EXPECT_EQ(j["cases"][2]["status"], "failed");
  EXPECT_EQ(j["cases"][2]["error"]["node"], "f");
  EXPECT_TRUE(j["cases"][0]["stage_seconds"].contains("src"));
  EXPECT_TRUE(j["cases"][0]["stage_seconds"].contains("f"));
  EXPECT_GT(j["cases_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["wall_s"].get<double>(), 0.0);
}

namespace {
// A writer-like stage declaring outputs, registered in-process, to test --resume.
class TouchStage : public Stage {
 public:
  void open(const StageContext& ctx) override { dir_ = ctx.output_dir; }
  CasePtr process(const CasePtr& in) override {
    ++calls;
    write_file_atomic(dir_ + "/" + in->id() + ".done", "x");
    return in;
  }
  std::vector<std::string> outputs_for(const CaseSeed& s, const StageContext& ctx) const override {
    return {ctx.output_dir + "/" + s.id + ".done"};
  }
  static inline std::atomic<int> calls{0};
  std::string dir_;
};
}  // namespace

TEST_F(Executor, ResumeSkipsCasesWhoseOutputsExist) {
  StageDescription d;
  d.kind = "t.touch";
  registry_.add_stage(d, [](const Params&) { return std::make_unique<TouchStage>(); });
  const char* graph = R"({"schema_version": 1, "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 5}}, {"id": "t", "stage": "t.touch"}]})";
  RunOptions o;
  auto r = run(graph, o);
  EXPECT_EQ(r.ok, 5);
  EXPECT_EQ(TouchStage::calls.load(), 5);
  std::filesystem::remove(out_ / "Case2.done");
  std::filesystem::remove(out_ / "Case4.done");
  o.resume = true;
  r = run(graph, o);
  EXPECT_EQ(TouchStage::calls.load(), 7);
  EXPECT_EQ(r.skipped, 3);
  EXPECT_EQ(r.ok, 2);
  EXPECT_EQ(r.cases[0].status, "skipped");
  EXPECT_EQ(r.cases[1].status, "ok");
}

// A stage whose code leaves the vector registers' upper halves in use (hand-written AVX assembly
// without vzeroupper) does not slow the stages that run after it on the thread.
TEST(CallStage, TheUpperVectorStateIsClearAfterEveryStage) {
#if defined(__x86_64__)
  if (!upper_vector_state_in_use() || !__builtin_cpu_supports("avx"))
    GTEST_SKIP() << "no AVX, or XGETBV cannot report XINUSE here";
  struct LeavesItInUse : Stage {
    CasePtr process(const CasePtr& in) override {
      const float one = 1.0f;
      asm volatile("vbroadcastss %0, %%ymm1" : : "m"(one) : "xmm1");
      in_use = *upper_vector_state_in_use();
      return in;
    }
    bool in_use = false;
  } stage;
  const CasePtr in = StageHarness::make_case("c", {{"image", NdArray::make<float>({2})}});
  call_stage(stage, "n", in);
  EXPECT_TRUE(stage.in_use);  // the stage did leave them in use
  EXPECT_FALSE(*upper_vector_state_in_use());
#else
  GTEST_SKIP() << "x86 only";
#endif
}

// What a stage declares it consumes is removed from its result by the executor's call, never from
// the case it was given; a failed result keeps everything for the report.
TEST(CallStage, ConsumedFieldsAreRemovedFromTheResultOnly) {
  struct Keep : Stage {
    CasePtr process(const CasePtr& in) override {
      auto out = in->derive();
      out->set("made", NdArray::make<float>({1}));
      return out;
    }
  } keep;
  struct Throw : Stage {
    CasePtr process(const CasePtr&) override { throw std::runtime_error("no"); }
  } fail;
  const CasePtr in = StageHarness::make_case(
      "c", {{"big", NdArray::make<float>({4})}, {"image", NdArray::make<float>({2})}});
  const CasePtr out = call_stage(keep, "n", in, {"big", "absent"});
  EXPECT_FALSE(out->has("big"));
  EXPECT_TRUE(out->has("image"));
  EXPECT_TRUE(out->has("made"));
  EXPECT_TRUE(in->has("big"));
  const CasePtr failed = call_stage(fail, "n", in, {"big"});
  EXPECT_TRUE(failed->failed());
  EXPECT_TRUE(failed->has("big"));
}
