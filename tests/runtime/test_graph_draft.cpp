// Graphs as plain data (GraphDraft): tools find nodes by stage kind, set typed values, and the
// result is validated exactly as a graph file, with command-line overrides still winning.
#include <gmock/gmock.h>

#include "spineparse/graph_draft.hpp"
#include "test_stage_options.hpp"
#include "test_util.hpp"

using namespace spineparse;
using ::testing::HasSubstr;

namespace {

const char* kGraph = R"({
  "schema_version": 1,
  "nodes": [
    {"id": "src", "stage": "test.source", "params": {"cases": 4}},
    {"id": "hold", "stage": "test.gate", "params": {"hold": 2}},
    {"id": "slow", "stage": "test.delay"},
    {"id": "also_slow", "stage": "test.delay", "params": {"ms": 5}}
  ]})";

class GraphDraftTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.load_plugin(spineparse::testing::test_plugin_dir() + "/spineparse_test.so");
  }
  Registry registry_;
};

}  // namespace

TEST_F(GraphDraftTest, FindsNodesByKindAndSetsTypedValues) {
  GraphDraft g = GraphDraft::from_text(kGraph, "/graphs/g.json");
  EXPECT_EQ(g.node_ids(), (std::vector<std::string>{"src", "hold", "slow", "also_slow"}));
  EXPECT_EQ(g.nodes_of_stage("test.delay"), (std::vector<std::string>{"slow", "also_slow"}));
  EXPECT_TRUE(g.nodes_of_stage("test.nothing").empty());
  EXPECT_EQ(g.stage_of("hold"), "test.gate");
  using spineparse::test_plugin::DelayOptions;
  for (const auto& id : g.nodes_of_stage("test.delay"))
    g.set<DelayOptions>(id, &DelayOptions::ms, 3);  // the key the stage's options declare
  g.set("src", "cases", std::int64_t{2});
  const GraphLoad l = load_graph(g, registry_);
  ASSERT_TRUE(l.ok()) << l.issues[0].to_string();
  EXPECT_EQ(l.graph->node("slow")->params.get_int("ms"), 3);       // set where there was none
  EXPECT_EQ(l.graph->node("also_slow")->params.get_int("ms"), 3);  // replaced
  EXPECT_EQ(l.graph->node("src")->params.get_int("cases"), 2);
  EXPECT_EQ(l.graph->node("hold")->params.get_int("timeout_ms"), 100);  // defaults still filled
  EXPECT_THROW(g.set("nope", "ms", std::int64_t{1}), std::invalid_argument);
}

TEST_F(GraphDraftTest, EditsAreValidatedAndOverridesWin) {
  GraphDraft g = GraphDraft::from_text(kGraph, "/graphs/g.json");
  g.set("slow", "ms", std::string("soon"));  // wrong type: caught by validation, with the node
  GraphLoad l = load_graph(g, registry_);
  ASSERT_FALSE(l.ok());
  EXPECT_THAT(l.issues[0].message, HasSubstr("slow"));
  EXPECT_THAT(l.issues[0].pointer, HasSubstr("/params/ms"));
  g.set("slow", "ms", std::int64_t{7});
  l = load_graph(g, registry_, {"slow.ms=9"});
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l.graph->node("slow")->params.get_int("ms"), 9);
}

TEST_F(GraphDraftTest, SetsAParameterWhereverAStageDeclaresIt) {
  GraphDraft g = GraphDraft::from_text(kGraph, "/graphs/g.json");
  EXPECT_EQ(g.set_where_declared(registry_, "device", std::string("cuda:1")),
            std::vector<std::string>{"hold"});  // only test.gate has a device
  const GraphLoad l = load_graph(g, registry_);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l.graph->node("hold")->params.get_string("device"), "cuda:1");
}

TEST_F(GraphDraftTest, RefusesWhatIsNotAGraphNamingTheFile) {
  EXPECT_THAT([] { GraphDraft::from_text("{", "/g/a.json"); },
              ::testing::ThrowsMessage<std::runtime_error>(HasSubstr("/g/a.json: not JSON")));
  EXPECT_THAT([] { GraphDraft::from_text(R"({"nodes": {}})", "/g/b.json"); },
              ::testing::ThrowsMessage<std::runtime_error>(HasSubstr("/g/b.json")));
  EXPECT_THAT([] { GraphDraft::from_text(R"({"nodes": [{"id": "x"}]})", "/g/c.json"); },
              ::testing::ThrowsMessage<std::runtime_error>(HasSubstr("\"stage\"")));
  EXPECT_THROW(GraphDraft::from_file("/no/such/graph.json"), std::runtime_error);
}
