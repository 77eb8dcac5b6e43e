// python.stage through the real plugin (loaded RTLD_LOCAL like every plugin) and the executor:
// shared read-only inputs, checked outputs, errors as failed cases or graph errors, concurrency,
// timeouts, memory over many cases, Ctrl-C, and the examples against values computed here.
#include <gmock/gmock.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli_util.hpp"
#include "harness.hpp"
#include "io/synth.hpp"
#include "io/volume_io.hpp"
#include "spineparse/executor.hpp"
#include "spineparse/files.hpp"
#include "spineparse/graph.hpp"
#include "test_util.hpp"

using namespace spineparse;
using ::testing::HasSubstr;
using spineparse::testing::TempDir;

namespace {

class PythonStage : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.load_plugin(spineparse::testing::test_plugin_dir() + "/spineparse_test.so");
    registry_.load_plugin(spineparse::testing::build_plugin_dir() + "/spineparse_python.so");
  }
  // Writes the module `name`.py into the code folder.
  void code(const std::string& name, const std::string& text) {
    write_file_atomic((code_ / (name + ".py")).string(), text);
  }
  // A graph: test.source (tiny [1,2,2] images, `cases` of them) -> python.stage with `params`
  // (path set to the code folder) -> test.delay 1 ms.
  std::string graph(const nlohmann::json& params, int cases = 4, int in_flight = 2) {
    nlohmann::json p = params;
    p["path"] = {code_.str()};
    nlohmann::json g = {
        {"schema_version", 1},
        {"max_in_flight", in_flight},
        {"nodes",
         {{{"id", "src"}, {"stage", "test.source"}, {"params", {{"cases", cases}}}},
          {{"id", "py"}, {"stage", "python.stage"}, {"params", p}},
          {{"id", "after"}, {"stage", "test.delay"}, {"params", {{"ms", 1}}}}}}};
    return g.dump();
  }
  RunReport run(const std::string& text, RunOptions o = {}) {
    auto g = load_graph_text(text, "g.json", registry_, {});
    if (!g.ok()) throw std::runtime_error(g.issues[0].to_string());
    o.output_dir = out_.str();
    o.progress = "none";
    if (o.threads == 0) o.threads = 2;
    return run_graph(*g.graph, registry_, o);
  }
  Registry registry_;
  TempDir code_, out_;
};

long resident_kb() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

}  // namespace

TEST_F(PythonStage, InputsShareTheFieldsMemoryAndAreReadOnly) {
  code("share", R"(
def run(case, options):
    a = case.fields["image"]
    return {"metrics": {"address": float(a.__array_interface__["data"][0]),
                        "writeable": float(a.flags.writeable), "n": float(a.sum())},
            "attrs": {"seen_id": case.id}}
)");
  const std::string path = (code_ / "g.json").string();
  write_file_atomic(path, graph({{"callable", "share:run"}, {"reads", {"image"}}}, 2));
  auto cases = spineparse::testing::run_chain(registry_, path, "", {}, out_.str());
  ASSERT_EQ(cases.size(), 2u);
  for (const auto& c : cases) {
    ASSERT_FALSE(c->failed()) << c->error()->message;
    const auto image = c->get("image");  // the field the code saw, passed on untouched
    EXPECT_EQ(static_cast<std::uintptr_t>(c->metrics().at("address")),
              reinterpret_cast<std::uintptr_t>(image->raw()));
    EXPECT_EQ(c->metrics().at("writeable"), 0.0);
    EXPECT_EQ(c->metrics().at("n"), 4.0 * std::stod(c->attr("n")));
    EXPECT_EQ(c->attr("seen_id"), c->id());
  }
}

TEST_F(PythonStage, WritingToAnInputFailsOnlyThatCase) {
  code("writer", R"(
def run(case, options):
    if case.id == options["victim"]:
        case.fields["image"][0, 0, 0] = 1.0
    return {}
)");
  auto r = run(graph({{"callable", "writer:run"}, {"reads", {"image"}},
                      {"options", {{"victim", "Case2"}}}}));
  ASSERT_EQ(r.cases.size(), 4u);
  EXPECT_EQ(r.ok, 3);
  for (const auto& c : r.cases) {
    if (c.id != "Case2") continue;
    EXPECT_EQ(c.status, "failed");
    EXPECT_EQ(c.error_node, "py");
    EXPECT_THAT(c.error, HasSubstr("ValueError: assignment destination is read-only"));
    EXPECT_THAT(c.error, HasSubstr("writer.py:4 in run"));
  }
}

TEST_F(PythonStage, AnExceptionsTypeMessageAndFramesReachTheRecord) {
  code("broken", R"(
def ratio(a, b):
    return a / b

def run(case, options):
    return {"metrics": {"r": ratio(1, 0)}}
)");
  auto r = run(graph({{"callable", "broken:run"}}, 2));
  ASSERT_EQ(r.failed, 2);
  const std::string& e = r.cases[0].error;
  EXPECT_THAT(e, HasSubstr("ZeroDivisionError: division by zero"));
  EXPECT_THAT(e, HasSubstr("broken.py:6 in run"));
  EXPECT_THAT(e, HasSubstr("broken.py:3 in ratio"));
  // run.json keeps it.
  const auto j = nlohmann::json::parse(read_file(r.run_json_path));
  EXPECT_THAT(j["cases"][0]["error"]["message"].get<std::string>(), HasSubstr("broken.py:3"));
}

TEST_F(PythonStage, ReturnedFieldsAreCheckedAgainstTheirDeclaration) {
  code("fields", R"(
import numpy as np
def run(case, options):
    k = options["kind"]
    if k == "good":     return {"mask": np.ones((1, 2, 2), np.uint8)}
    if k == "dtype":    return {"mask": np.ones((1, 2, 2), np.float64)}
    if k == "shape":    return {"mask": np.ones((1, 3, 2), np.uint8)}
    if k == "missing":  return {"fields": {}}
    if k == "extra":    return {"mask": np.ones((1, 2, 2), np.uint8), "other": np.zeros(3)}
    if k == "list":     return {"mask": [[[1, 1], [1, 1]]]}
    if k == "metric":   return {"fields": {"mask": np.ones((1, 2, 2), np.uint8)}, "metrics": {"m": "x"}}
    return 42
)");
  const nlohmann::json writes = {{{"name", "mask"}, {"dtype", "uint8"}, {"axes", "D,H,W"}}};
  const std::map<std::string, std::string> want = {
      {"good", ""},
      {"dtype", "field 'mask' is float64, declared uint8"},
      {"shape", "field 'mask' has shape 1x3x2, but the case's grid is 1x2x2 (D,H,W)"},
      {"missing", "did not return field 'mask' (declared uint8 D,H,W)"},
      {"extra", "returned field 'other', which the node does not declare in 'writes'"},
      {"list", "field 'mask' is list, not a numpy array"},
      {"metric", "metric 'm' is str, not a number"},
      {"other", "returned int; return a dict"}};
  for (const auto& [kind, message] : want) {
    auto r = run(graph({{"callable", "fields:run"}, {"writes", writes},
                        {"options", {{"kind", kind}}}}, 1));
    ASSERT_EQ(r.cases.size(), 1u);
    if (message.empty()) {
      EXPECT_EQ(r.cases[0].status, "ok") << r.cases[0].error;
    } else {
      EXPECT_EQ(r.cases[0].status, "failed") << kind;
      EXPECT_THAT(r.cases[0].error, HasSubstr(message)) << kind;
    }
  }
}

TEST_F(PythonStage, CodeThatCannotLoadStopsTheRunBeforeAnyCase) {
  code("bad_syntax", "def run(case, options):\n    return {\n");
  code("fine", "def run(case, options):\n    return {}\nclass NoProcess:\n    def __init__(self, o):\n        pass\n");
  code("picky", "class Picky:\n    def __init__(self, options):\n        raise ValueError('options.size: must be positive')\n");
  const std::map<std::string, std::string> want = {
      {"bad_syntax:run", "bad_syntax.py\", line 2"},
      {"nowhere:run", "ModuleNotFoundError: No module named 'nowhere'"},
      {"fine:nothere", "fine.py) has no 'nothere'"},
      {"fine:NoProcess", "has no method process(self, case)"},
      {"picky:Picky", "ValueError: options.size: must be positive"}};
  for (const auto& [callable, message] : want) {
    try {
      run(graph({{"callable", callable}}, 2));
      ADD_FAILURE() << callable << " ran";
    } catch (const RunError& e) {
      EXPECT_THAT(e.what(), HasSubstr("node 'py': cannot use " + callable)) << e.what();
      EXPECT_THAT(e.what(), HasSubstr(message)) << e.what();
    }
  }
}

TEST_F(PythonStage, TheGraphCheckSeesItsFieldsAndParameters) {
  auto issues = [&](const nlohmann::json& params) {
    auto g = load_graph_text(graph(params), "g.json", registry_, {});
    std::string all;
    for (const auto& i : g.issues) all += i.to_string() + "\n";
    return all;
  };
  EXPECT_EQ(issues({{"callable", "m:run"}, {"reads", {"image"}}}), "");
  EXPECT_THAT(issues({{"callable", "m:run"}, {"reads", {"labels"}}}),
              HasSubstr("node 'py' (stage python.stage) reads case field 'labels', which no "
                        "upstream stage writes"));
  EXPECT_THAT(issues({{"callable", "m"}}), HasSubstr("write module:function or module:Class"));
  EXPECT_THAT(issues({{"callable", "m:run"}, {"options", {1, 2}}}),
              HasSubstr("'options' must be a JSON object"));
  EXPECT_THAT(issues({{"callable", "m:run"}, {"writes", {{{"name", "x"}, {"dtype", "bool"}}}}}),
              HasSubstr("writes[0] (x) needs a \"dtype\""));
  EXPECT_THAT(issues({{"id", "x"}}), HasSubstr("requires parameter 'callable'"));
  // A field it declares is there for the nodes after it.
  nlohmann::json g = nlohmann::json::parse(graph(
      {{"callable", "m:run"}, {"writes", {{{"name", "mask"}, {"dtype", "uint8"}}}}}));
  g["nodes"].push_back({{"id", "w"}, {"stage", "io.write_nifti"}, {"params", {{"field", "mask"}}}});
  registry_.load_plugin(spineparse::testing::build_plugin_dir() + "/spineparse_io.so");
  EXPECT_TRUE(load_graph_text(g.dump(), "g.json", registry_, {}).ok());
}

TEST_F(PythonStage, ClassFormOpensOnceAndCloses) {
  code("counted", R"(
import os
class Counted:
    made = 0
    def __init__(self, options):
        Counted.made += 1
        self.path = options["closed"]
        self.seen = 0
    def process(self, case):
        self.seen += 1
        return {"metrics": {"made": Counted.made}}
    def close(self):
        with open(self.path, "w") as f:
            f.write(str(self.seen))
)");
  const std::string closed = (out_ / "closed.txt").string();
  auto r = run(graph({{"callable", "counted:Counted"}, {"options", {{"closed", closed}}}}, 5));
  EXPECT_EQ(r.ok, 5);
  for (const auto& c : r.cases) EXPECT_EQ(c.metrics.at("made"), 1.0);
  EXPECT_EQ(read_file(closed), "5");
}

TEST_F(PythonStage, ConcurrencyBoundsTheCallsInsideTheCode) {
  code("inside", R"(
import threading, time
lock = threading.Lock()
now = 0
most = 0
def run(case, options):
    global now, most
    with lock:
        now += 1
        most = max(most, now)
    time.sleep(0.2)            # releases the GIL, as numpy and torch do
    with lock:
        now -= 1
    return {"metrics": {"most_inside": most}}
)");
  for (int limit : {1, 2}) {
    auto r = run(graph({{"callable", "inside:run"}, {"concurrency", limit}}, 6, 4));
    ASSERT_EQ(r.ok, 6);
    double most = 0;
    for (const auto& c : r.cases) most = std::max(most, c.metrics.at("most_inside"));
    EXPECT_EQ(most, limit);
  }
}

TEST_F(PythonStage, ACallPastTimeoutFailsItsCaseAndTheRunGoesOn) {
  code("slow", R"(
import time
def run(case, options):
    if case.id == "Case1":
        end = time.time() + 30
        while time.time() < end:
            pass
    return {"metrics": {"done": 1}}
)");
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run(graph({{"callable", "slow:run"}, {"timeout_s", 0.5}}, 3));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 20.0);
  EXPECT_EQ(r.ok, 2);
  EXPECT_EQ(r.cases[0].status, "failed");
  EXPECT_THAT(r.cases[0].error, HasSubstr("ran longer than timeout_s = 0.5 s"));
  EXPECT_THAT(r.cases[0].error, HasSubstr("TimeoutError"));
}

// 2 threads x 200 cases through Python between C++ stages: no deadlock, and memory does not grow
// with the cases (each returns a new 1 MB field that lives only as long as its case).
TEST_F(PythonStage, TwoHundredCasesOnTwoThreadsKeepMemoryFlat) {
  code("big", R"(
import numpy as np
def run(case, options):
    image = case.fields["image"]
    return {"fields": {"big": np.full(262144, float(image[0, 0, 0]), np.float32)},
            "metrics": {"mean": float(image.mean())}}
)");
  std::vector<long> rss;
  std::mutex m;
  RunOptions o;
  o.threads = 2;
  o.after_case = [&] {
    std::lock_guard<std::mutex> lock(m);
    rss.push_back(resident_kb());
  };
  auto r = run(graph({{"callable", "big:run"}, {"reads", {"image"}},
                      {"writes", {{{"name", "big"}, {"dtype", "float32"}, {"axes", "N"}}}}},
                     200, 4),
               o);
  ASSERT_EQ(r.ok, 200);
  for (const auto& c : r.cases) EXPECT_EQ(c.metrics.at("mean"), std::stod(c.id.substr(4)));
  ASSERT_EQ(rss.size(), 200u);
  EXPECT_LT(rss[199] - rss[49], 24 * 1024) << "kB at case 50: " << rss[49] << ", at 200: " << rss[199];
}

// Ctrl-C while a case is inside a long Python call: the call finishes, its outputs are whole, the
// rest is listed as not run, and --resume finishes the cohort.
TEST(PythonStageCli, CtrlCDuringAPythonCallEndsTheRunCleanly) {
  TempDir d;
  const std::string cohort = (d / "cohort").string(), out = (d / "out").string();
  ASSERT_EQ(sp("synth --cases 3 --size 32 48 --seed 3 --out " + cohort).code, 0);
  const std::string marks = (d / "marks").string();
  std::filesystem::create_directories(marks);
  write_file_atomic((d / "slow.py").string(),
                    "import time\ndef run(case, options):\n"
                    "    open(options['marks'] + '/' + case.id, 'w').close()\n"
                    "    time.sleep(2)\n    return {}\n");
  const std::string g = (d / "g.json").string();
  write_file_atomic(g, R"({"schema_version": 1, "max_in_flight": 1, "nodes": [
    {"id": "read", "stage": "io.read_dataset"},
    {"id": "slow", "stage": "python.stage", "params": {"callable": "slow:run", "path": ["."],
                                                          "options": {"marks": ")" + marks + R"("}}},
    {"id": "write", "stage": "io.write_nifti", "params": {"field": "image", "name": "img_{id}.nii.gz"}}]})");
  const std::string cmd = std::string(SPINEPARSE_CLI) + " run " + g + " --input " + cohort +
                          " --output " + out + " --progress none";
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd + " >/dev/null 2>&1").c_str(), nullptr);
    _exit(127);
  }
  // Wait (bounded) until the first case is inside its call, whatever the machine's load.
  std::string first;
  for (int i = 0; i < 600 && first.empty(); ++i) {
    for (const auto& e : std::filesystem::directory_iterator(marks)) first = e.path().filename().string();
    if (first.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(first.empty()) << "no case entered the Python call within 30 s";
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  const auto j = nlohmann::json::parse(read_file(out + "/run.json"));
  const std::size_t not_run = j["interrupted"]["not_run"].size();
  EXPECT_GE(not_run, 1u) << j.dump();
  EXPECT_EQ(io::volume_problem(out + "/img_" + first + ".nii.gz"), "");  // the call in flight finished
  for (const auto& c : j["cases"]) EXPECT_NE(c["status"], "failed") << c.dump();
  const auto r = sp("run " + g + " --input " + cohort + " --output " + out +
                    " --resume --progress none");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr(std::to_string(not_run) + " ok, 0 failed, " +
                                  std::to_string(3 - not_run) + " skipped"));
}

// examples/python/graph.json on a synthetic cohort: the vertebra mask is the segmentation's
// vertebrae, and each disc signal ratio is the one computed here from the input file.
TEST(PythonStageCli, TheExamplesGraphWritesWhatItsCodeComputes) {
  if (!has_networks()) GTEST_SKIP() << "built without the network plugins";
  TempDir d;
  const std::string cohort = (d / "cohort").string(), out = (d / "out").string();
  ASSERT_EQ(sp("synth --cases 2 --size 64 96 --seed 8 --out " + cohort).code, 0);
  auto r = sp("run " + spineparse::testing::source_dir() + "/examples/python/graph.json --input " +
              cohort + " --output " + out + " --progress none");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto j = nlohmann::json::parse(read_file(out + "/run.json"));
  const char* names[] = {"L5_S", "L4_L5", "L3_L4", "L2_L3", "L1_L2", "T12_L1", "T11_T12", "T10_T11", "T9_T10"};
  int compared = 0;
  for (const auto& c : j["cases"]) {
    const std::string id = c["id"];
    const auto image = io::read_image(cohort + "/original_mr/" + id + ".nii.gz");
    const auto seg = io::read_labels(out + "/seg_" + id + ".nii.gz", 19);
    const auto mask = io::read_labels(out + "/vertebrae_" + id + ".nii.gz", 1);
    std::vector<double> sum(20, 0.0), n(20, 0.0);
    std::int64_t vertebra_voxels = 0, mismatched = 0;
    for (std::int64_t k = 0; k < seg.data->numel(); ++k) {
      const int l = seg.data->data<std::uint8_t>()[k];
      sum[l] += image.data->data<float>()[k];
      n[l] += 1;
      const bool vertebra = l >= 1 && l <= 10;
      vertebra_voxels += vertebra;
      mismatched += vertebra != (mask.data->data<std::uint8_t>()[k] == 1);
    }
    EXPECT_GT(vertebra_voxels, 1000) << id;
    EXPECT_EQ(mismatched, 0) << id;
    EXPECT_NEAR(c["metrics"]["mask_volume_ml"].get<double>(),
                vertebra_voxels * image.geometry.spacing[0] * image.geometry.spacing[1] *
                    image.geometry.spacing[2] / 1000.0,
                1e-6 * vertebra_voxels);
    for (int k = 1; k <= 9; ++k) {
      const std::string key = std::string("disc_signal_") + names[k - 1];
      const bool shown = std::min({n[10 + k], n[k], n[k + 1]}) >= 20;
      ASSERT_EQ(c["metrics"].contains(key), shown) << id << " " << key;
      if (!shown) continue;
      const double want = (sum[10 + k] / n[10 + k]) / ((sum[k] / n[k] + sum[k + 1] / n[k + 1]) / 2);
      EXPECT_NEAR(c["metrics"][key].get<double>(), want, 1e-4 * want) << id << " " << key;
      ++compared;
    }
  }
  EXPECT_GE(compared, 8);
}
