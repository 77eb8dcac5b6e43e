// Every kind of graph validation error, with its code, pointer and message.
#include <gmock/gmock.h>

#include <filesystem>

#include "spineparse/graph.hpp"
#include "test_util.hpp"

using namespace spineparse;
using ::testing::HasSubstr;

namespace {

class GraphValidation : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.load_plugin(spineparse::testing::test_plugin_dir() + "/spineparse_test.so");
  }

  GraphLoad load(const std::string& text, const std::vector<std::string>& sets = {}) {
    return load_graph_text(text, "/graphs/g.json", registry_, sets);
  }
  // The single issue with this code; fails the test when there is not exactly one.
  ConfigIssue only(const GraphLoad& g, const std::string& code) {
    std::vector<ConfigIssue> hits;
    for (const auto& i : g.issues) {
      if (i.code == code) hits.push_back(i);
    }
    EXPECT_EQ(hits.size(), 1u) << "issues: " << dump(g);
    return hits.empty() ? ConfigIssue{} : hits[0];
  }
  static std::string dump(const GraphLoad& g) {
    std::string s;
    for (const auto& i : g.issues) s += i.to_string() + "\n";
    return s;
  }
  Registry registry_;
};

const char* kGood = R"({
  "schema_version": 1, "max_in_flight": 3,
  "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 4}, "comment": "tiny cases"},
    {"id": "f", "stage": "test.fail", "params": {"ids": ["Case2"]}},
    {"id": "p", "stage": "test.pass"}
  ]})";

}  // namespace

TEST_F(GraphValidation, AcceptsAGoodGraphAndFillsDefaults) {
  auto g = load(kGood);
  ASSERT_TRUE(g.ok()) << dump(g);
  EXPECT_EQ(g.graph->max_in_flight, 3);
  EXPECT_EQ(g.graph->source_id, "src");
  ASSERT_EQ(g.graph->nodes.size(), 3u);
  EXPECT_EQ(g.graph->nodes[1].params.get_string("mode"), "std");  // default filled in
  EXPECT_EQ(g.graph->leaf_ids, std::vector<std::string>{"p"});
  EXPECT_THAT(g.graph->resolved_json, HasSubstr("\"mode\": \"std\""));
}

TEST_F(GraphValidation, AParameterMayTakeAnotherNodesValue) {
  const char* text = R"({"schema_version": 1, "nodes": [
    {"id": "src", "stage": "test.source"},
    {"id": "f", "stage": "test.fail", "params": {"mode": "std", "ids": []}},
    {"id": "g", "stage": "test.fail", "params": {"mode": "@f.mode", "ids": []}}]})";
  auto g = load(text, {"f.mode=non_std"});  // the reference follows --set
  ASSERT_TRUE(g.ok()) << dump(g);
  EXPECT_EQ(g.graph->node("g")->params.get_string("mode"), "non_std");
  for (const char* bad : {"@f", "@nobody.mode", "@f.nothing", "@f.ids", "@g.mode"}) {
    std::string t = text;
    t.replace(t.find("@f.mode"), 7, bad);
    EXPECT_THAT(only(load(t), "bad_reference").message, HasSubstr(bad)) << bad;
  }
}

TEST_F(GraphValidation, BadJson) {
  auto g = load("{ nope");
  EXPECT_THAT(only(g, "bad_json").message, HasSubstr("not valid JSON"));
}

TEST_F(GraphValidation, WhatTheFuzzersFoundIsAnIssueNotACrash) {
  // A number beyond double's range used to escape as an exception and abort the process.
  auto g = load(R"({"schema_version": 1, "max_in_flight": 1e400, "nodes": []})");
  EXPECT_THAT(only(g, "bad_json").message, HasSubstr("not valid JSON"));
  // --set values that are not UTF-8, or integers beyond 64 bits, are reported, not thrown.
  g = load(kGood, {"f.mode=\xff\xfe", "src.cases=1e300"});
  EXPECT_FALSE(g.ok());
  EXPECT_THAT(dump(g), HasSubstr("src.cases"));
}

TEST_F(GraphValidation, SchemaVersionIsRequiredAndChecked) {
  auto g = load(R"({"nodes": [{"id": "s", "stage": "test.source"}]})");
  EXPECT_EQ(only(g, "missing_key").pointer, "/schema_version");
  g = load(R"({"schema_version": 7, "nodes": [{"id": "s", "stage": "test.source"}]})");
  EXPECT_THAT(only(g, "bad_schema_version").message, HasSubstr("7 is not supported"));
}

TEST_F(GraphValidation, UnknownKeysAtEveryLevel) {
  auto g = load(R"({"schema_version": 1, "nodez": 1,
    "nodes": [{"id": "s", "stage": "test.source", "param": {}}]})");
  ASSERT_EQ(g.issues.size(), 2u) << dump(g);
  EXPECT_EQ(g.issues[0].pointer, "/nodez");
  EXPECT_EQ(g.issues[1].pointer, "/nodes/0/param");
  EXPECT_THAT(g.issues[1].message, HasSubstr("unknown key 'param'"));
}

TEST_F(GraphValidation, UnknownStageKind) {
  auto g = load(R"({"schema_version": 1, "nodes": [{"id": "s", "stage": "test.source"},
    {"id": "x", "stage": "test.pas"}]})");
  auto i = only(g, "unknown_stage");
  EXPECT_EQ(i.pointer, "/nodes/1/stage");
  EXPECT_THAT(i.message, HasSubstr("unknown stage kind 'test.pas'"));
  EXPECT_THAT(i.message, HasSubstr("did you mean test.pass"));
}

TEST_F(GraphValidation, UnknownMissingMistypedAndOutOfRangeParameters) {
  auto g = load(R"({"schema_version": 1, "nodes": [
    {"id": "s", "stage": "test.source", "params": {"cases": "four", "colour": 1}},
    {"id": "f", "stage": "test.fail", "params": {"mode": "loud"}},
    {"id": "d", "stage": "test.delay", "params": {"ms": 2.5}}]})");
  EXPECT_EQ(g.issues.size(), 5u) << dump(g);
  auto t = only(g, "unknown_param");
  EXPECT_EQ(t.pointer, "/nodes/0/params/colour");
  EXPECT_THAT(t.message, HasSubstr("known: cases"));
  auto m = only(g, "missing_param");
  EXPECT_EQ(m.pointer, "/nodes/1/params/ids");
  EXPECT_THAT(m.message, HasSubstr("--set f.ids="));
  std::vector<std::string> type_ptrs;
  for (const auto& i : g.issues) {
    if (i.code == "bad_param_type") type_ptrs.push_back(i.pointer);
  }
  EXPECT_EQ(type_ptrs, (std::vector<std::string>{"/nodes/0/params/cases", "/nodes/2/params/ms"}));
  EXPECT_THAT(only(g, "bad_param_value").message, HasSubstr("'loud', allowed: std, non_std"));
}

TEST_F(GraphValidation, NumericBounds) {
  auto g = load(
      R"({"schema_version": 1, "nodes": [{"id": "s", "stage": "test.source", "params": {"cases": -1}}]})");
  EXPECT_THAT(only(g, "bad_param_value").message, HasSubstr("outside [0"));
}

TEST_F(GraphValidation, DuplicateNodeIds) {
  auto g = load(R"({"schema_version": 1, "nodes": [{"id": "s", "stage": "test.source"},
    {"id": "p", "stage": "test.pass"}, {"id": "p", "stage": "test.pass"}], "edges": [["s", "p"]]})");
  auto i = only(g, "duplicate_node");
  EXPECT_EQ(i.pointer, "/nodes/2/id");
  EXPECT_THAT(i.message, HasSubstr("first at /nodes/1"));
}

TEST_F(GraphValidation, DanglingEdgeNamesBothEnds) {
  auto g = load(R"({"schema_version": 1, "nodes": [{"id": "s", "stage": "test.source"},
    {"id": "p", "stage": "test.pass"}], "edges": [["s", "p"], ["p", "q"]]})");
  auto i = only(g, "dangling_edge");
  EXPECT_EQ(i.pointer, "/edges/1/1");
  EXPECT_THAT(i.message, HasSubstr("edge p -> q: no node has id 'q'"));
}

TEST_F(GraphValidation, Cycle) {
  auto g = load(R"({"schema_version": 1, "nodes": [{"id": "s", "stage": "test.source"},
    {"id": "a", "stage": "test.pass"}, {"id": "b", "stage": "test.pass"}, {"id": "c", "stage": "test.pass"}],
    "edges": [["s", "a"], ["b", "c"], ["c", "b"]]})");
  auto i = only(g, "cycle");
  EXPECT_THAT(i.message, HasSubstr("cycle through nodes: b, c"));
}

TEST_F(GraphValidation, JoinsAndMisplacedSources) {
  auto g = load(R"({"schema_version": 1, "nodes": [{"id": "s", "stage": "test.source"},
    {"id": "a", "stage": "test.pass"}, {"id": "b", "stage": "test.pass"}],
    "edges": [["s", "a"], ["s", "b"], ["a", "b"]]})");
  EXPECT_THAT(only(g, "join_unsupported").message, HasSubstr("several inputs (s, a)"));
  g = load(
      R"({"schema_version": 1, "nodes": [{"id": "p", "stage": "test.pass"}, {"id": "s", "stage": "test.source"}]})");
  EXPECT_THAT(only(g, "not_a_source").message, HasSubstr("'test.pass' is not a source"));
  EXPECT_EQ(only(g, "source_not_first").pointer, "/nodes/1/stage");
}

TEST_F(GraphValidation, FieldNoUpstreamStageWrites) {
  // Fan-out is fine: both branches see the source's "image".
  auto g = load(R"({"schema_version": 1, "nodes": [{"id": "s", "stage": "test.source"},
    {"id": "f", "stage": "test.fail", "params": {"ids": []}},
    {"id": "f2", "stage": "test.fail", "params": {"ids": []}}],
    "edges": [["s", "f"], ["s", "f2"]]})");
  EXPECT_TRUE(g.ok()) << dump(g);
  // Now a stage reading a field nobody writes: the writer-less branch.
  StageDescription needs;
  needs.kind = "t.needs_labels";
  needs.reads = {{"labels"}, {"mask", true}};
  registry_.add_stage(needs, [](const Params&) -> std::unique_ptr<Stage> { return nullptr; });
  g = load(R"({"schema_version": 1, "nodes": [{"id": "s", "stage": "test.source"},
    {"id": "n", "stage": "t.needs_labels"}]})");
  auto i = only(g, "missing_field");
  EXPECT_EQ(i.pointer, "/nodes/1");
  EXPECT_THAT(
      i.message,
      HasSubstr(
          "reads case field 'labels', which no upstream stage writes (upstream writes: image)"));
}

namespace {
// An in-process kind declaring the attributes it reads and writes.
void add_attribute_kind(Registry& r, const std::string& kind, std::vector<AttributeUse> reads,
                        std::vector<AttributeUse> writes, bool writes_any = false) {
  StageDescription d;
  d.kind = kind;
  r.add_stage(d, [](const Params&) -> std::unique_ptr<Stage> { return nullptr; });
  StageAttributes a;
  a.reads = std::move(reads);
  a.writes = std::move(writes);
  a.writes_any = writes_any;
  r.declare_attributes(kind, a);
}
}  // namespace

TEST_F(GraphValidation, AnAttributeReadNeedsAWriterUpstreamNamedInTheError) {
  add_attribute_kind(registry_, "t.write_grid", {}, {{"grid", false, "", "Grid, grid.hpp"}});
  add_attribute_kind(registry_, "t.read_grid", {{"grid", false, "", "Grid, grid.hpp"},
                                                {"warnings", true}, {"n"}}, {});
  auto graph = [](const char* middle) {
    return std::string(R"({"schema_version": 1, "nodes": [{"id": "s", "stage": "test.source"},)") +
           middle + "]}";
  };
  auto g = load(graph(R"({"id": "w", "stage": "t.write_grid"}, {"id": "r", "stage": "t.read_grid"})"));
  EXPECT_TRUE(g.ok()) << dump(g);  // "n" comes with the source's seeds, "warnings" is optional
  EXPECT_TRUE(g.notes.empty());

  g = load(graph(R"({"id": "r", "stage": "t.read_grid"})"));
  auto i = only(g, "missing_attribute");
  EXPECT_EQ(i.pointer, "/nodes/1");
  EXPECT_THAT(i.message, HasSubstr("node 'r' (stage t.read_grid) reads case value 'grid' (Grid, "
                                   "grid.hpp), which no upstream node writes: add a node of "
                                   "stage t.write_grid before it"));
  // The writer after the reader: both named.
  g = load(graph(R"({"id": "r", "stage": "t.read_grid"}, {"id": "w", "stage": "t.write_grid"})"));
  EXPECT_THAT(only(g, "missing_attribute").message,
              HasSubstr("node 'w' (stage t.write_grid) writes it but does not run before it"));
  // A branch does not see its sibling's writes.
  g = load(R"({"schema_version": 1, "nodes": [{"id": "s", "stage": "test.source"},
    {"id": "w", "stage": "t.write_grid"}, {"id": "r", "stage": "t.read_grid"}],
    "edges": [["s", "w"], ["s", "r"]]})");
  EXPECT_THAT(only(g, "missing_attribute").message, HasSubstr("node 'r'"));
}

TEST_F(GraphValidation, BelowAStageThatWritesAnyAttributeOrAnOlderPluginEveryReadPasses) {
  add_attribute_kind(registry_, "t.read_x", {{"x"}}, {});
  add_attribute_kind(registry_, "t.python_like", {}, {}, /*writes_any=*/true);
  auto g = load(R"({"schema_version": 1, "nodes": [{"id": "s", "stage": "test.source"},
    {"id": "p", "stage": "t.python_like"}, {"id": "r", "stage": "t.read_x"}]})");
  EXPECT_TRUE(g.ok()) << dump(g);
  // A kind of a plugin built for ABI 2.6 declares nothing: allowed, with a note naming it.
  registry_.load_plugin(spineparse::testing::test_plugin_dir() + "/test_older_minor.so");
  EXPECT_EQ(registry_.attributes("older.pass"), nullptr);
  ASSERT_NE(registry_.attributes("test.pass"), nullptr);  // this minor: declares none
  g = load(R"({"schema_version": 1, "nodes": [{"id": "s", "stage": "test.source"},
    {"id": "o", "stage": "older.pass"}, {"id": "r", "stage": "t.read_x"}]})");
  EXPECT_TRUE(g.ok()) << dump(g);
  ASSERT_EQ(g.notes.size(), 1u);
  EXPECT_THAT(g.notes[0], HasSubstr("node 'o' (stage older.pass, plugin older built for ABI "
                                    "2.6) declares no case attributes"));
  g = load(R"({"schema_version": 1, "nodes": [{"id": "s", "stage": "test.source"},
    {"id": "r", "stage": "t.read_x"}]})");
  EXPECT_THAT(only(g, "missing_attribute").message, HasSubstr("no loaded stage writes it"));
}

TEST_F(GraphValidation, SerialStagesCannotRunInParallel) {
  auto g = load(R"({"schema_version": 1, "nodes": [{"id": "s", "stage": "test.source"},
    {"id": "x", "stage": "test.serial", "concurrency": "parallel"}]})");
  EXPECT_EQ(only(g, "bad_concurrency").pointer, "/nodes/1/concurrency");
}

TEST_F(GraphValidation, MaxInFlightMustBePositive) {
  auto g = load(
      R"({"schema_version": 1, "max_in_flight": 0, "nodes": [{"id": "s", "stage": "test.source"}]})");
  EXPECT_EQ(only(g, "bad_value").pointer, "/max_in_flight");
}

TEST_F(GraphValidation, RefusedPluginIsReportedAtItsEntry) {
  auto g = load(std::string(R"({"schema_version": 1, "plugins": [")") +
                spineparse::testing::test_plugin_dir() +
                R"(/test_bad_abi.so"], "nodes": [{"id": "s", "stage": "test.source"}]})");
  auto i = only(g, "plugin_refused");
  EXPECT_EQ(i.pointer, "/plugins/0");
  EXPECT_THAT(i.message, HasSubstr("ABI 99"));
}

TEST_F(GraphValidation, OverridesAreTypedAndChecked) {
  auto g = load(kGood, {"src.cases=7", "f.ids=Case1,Case3", "p.x=1", "nosuch.a=1", "src.cases=many",
                        "garbage"});
  EXPECT_EQ(g.issues.size(), 4u) << dump(g);
  g = load(kGood, {"src.cases=7", "f.ids=Case1,Case3"});
  ASSERT_TRUE(g.ok()) << dump(g);
  EXPECT_EQ(g.graph->node("src")->params.get_int("cases"), 7);
  EXPECT_EQ(g.graph->node("f")->params.get_string_list("ids"),
            (std::vector<std::string>{"Case1", "Case3"}));
}

TEST_F(GraphValidation, OverrideSuppliesARequiredParameter) {
  const char* text = R"({"schema_version": 1, "nodes": [{"id": "s", "stage": "test.source"},
    {"id": "f", "stage": "test.fail"}]})";
  EXPECT_FALSE(load(text).ok());
  EXPECT_TRUE(load(text, {"f.ids=Case1"}).ok());
}

TEST_F(GraphValidation, ReportsAllProblemsAtOnce) {
  auto g = load(R"({"schema_version": 1, "extra": 1, "nodes": [
    {"id": "s", "stage": "test.source", "params": {"cases": true}},
    {"id": "x", "stage": "nope.nope"},
    {"id": "f", "stage": "test.fail", "params": {"ids": ["a"], "mode": "x"}}]})");
  EXPECT_GE(g.issues.size(), 4u) << dump(g);
}

TEST_F(GraphValidation, PathParametersResolveAgainstTheGraphFolder) {
  StageDescription d;
  d.kind = "t.weights";
  d.params = {{"weights", ParamType::kPath, ParamValue(std::string()), false, "file"}};
  registry_.add_stage(d, [](const Params&) -> std::unique_ptr<Stage> { return nullptr; });
  auto g = load(R"({"schema_version": 1, "nodes": [{"id": "s", "stage": "test.source"},
    {"id": "w", "stage": "t.weights", "params": {"weights": "../models/a.safetensors"}}]})");
  ASSERT_TRUE(g.ok()) << dump(g);
  EXPECT_EQ(g.graph->node("w")->params.get_string("weights"), "/models/a.safetensors");
  g = load(R"({"schema_version": 1, "nodes": [{"id": "s", "stage": "test.source"},
    {"id": "w", "stage": "t.weights"}]})",
           {"w.weights=rel/b.safetensors"});
  // --set: against the current folder, made absolute so that a recorded graph means the same
  // file from any folder.
  EXPECT_EQ(g.graph->node("w")->params.get_string("weights"),
            (std::filesystem::current_path() / "rel/b.safetensors").string());
  // A recorded graph read back (merge, from another folder): absolute paths stay as they are.
  const std::string recorded = g.graph->resolved_json;
  auto again = load_graph_text(recorded, "/elsewhere/g.json", registry_);
  ASSERT_TRUE(again.ok()) << dump(again);
  EXPECT_EQ(again.graph->node("w")->params.get_string("weights"),
            (std::filesystem::current_path() / "rel/b.safetensors").string());
}
