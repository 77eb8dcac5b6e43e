// Sharded runs on real cluster software, as users start them: a one-node Slurm cluster (job
// array + merge job from `spineparse slurm --submit`) and Open MPI's mpirun with --shard auto.
// The merged records must equal one process's case by case. The tools come from scripts/setup;
// where they are missing the tests skip, unless SPINEPARSE_CLUSTER_TESTS=required (scripts/test).
#include <gmock/gmock.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "../tools/cli/cli_util.hpp"
#include "spineparse/files.hpp"

using nlohmann::json;
using spineparse::testing::TempDir;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {

bool have(const std::string& tool) { return shell("command -v " + tool).code == 0; }
bool required() {
  const char* v = std::getenv("SPINEPARSE_CLUSTER_TESTS");
  return v && std::string(v) == "required";
}
#define NEED_TOOLS(...)                                                           \
  for (const char* tool : {__VA_ARGS__})                                          \
    if (!have(tool)) {                                                            \
      if (required()) FAIL() << tool << " is missing: scripts/setup installs it"; \
      GTEST_SKIP() << tool << " is not installed (scripts/setup installs it)";    \
    }

json load(const fs::path& p) { return json::parse(spineparse::read_file(p.string())); }

// A cohort of 5 synthetic cases and a corrupt one (Case6), the graph to run (the demo graph where
// the networks and demo models are built, else a network-free scored graph of test stages) and
// one process's run of it, the reference.
struct Cohort {
  TempDir d;
  std::string input, graph, plugins;
  Cohort() {
    input = (d / "cohort").string();
    EXPECT_EQ(sp("synth --cases 5 --size 48 64 --seed 21 --out " + input).code, 0);
    std::ofstream(d / "cohort/original_mr/Case6.nii.gz") << "not a volume";
    const std::string src = spineparse::testing::source_dir();
    if (has_networks() && fs::exists(src + "/models/demo_gcsn.safetensors")) {
      graph = src + "/graphs/demo.json";
    } else {
      graph = (d / "scored.json").string();
      spineparse::write_file_atomic(graph, R"({"schema_version": 1, "nodes": [
        {"id": "read", "stage": "io.read_dataset"},
        {"id": "labels", "stage": "test.mask_as_labels"},
        {"id": "evaluate", "stage": "metrics.evaluate"},
        {"id": "write", "stage": "io.write_nifti", "params": {"field": "labels", "name": "seg_{id}.nii.gz"}}]})");
    }
    plugins = " --plugin-dir " + spineparse::testing::test_plugin_dir();
    const auto r = sp("run " + graph + " --input " + input + " --output " +
                      (d / "single").string() + plugins + " --progress none");
    EXPECT_EQ(r.code, 1) << r.output;  // Case6 fails
  }

  // The merged record in `out` against the single process's, case by case, and the shards'
  // records: every case in exactly one shard, started by `source`; no temporaries left.
  void expect_merged_equals_single(const std::string& out, int shards, const std::string& source) {
    const json single = load(d / "single/run.json"), merged = load(out + "/run.json");
    ASSERT_EQ(merged["cases"].size(), single["cases"].size());
    for (std::size_t i = 0; i < single["cases"].size(); ++i) {
      const json &a = single["cases"][i], &b = merged["cases"][i];
      EXPECT_EQ(a["id"], b["id"]);
      EXPECT_EQ(a["status"], b["status"]) << a["id"];
      EXPECT_EQ(a.value("metrics", json()), b.value("metrics", json())) << a["id"];
      EXPECT_EQ(a.value("error", json()), b.value("error", json())) << a["id"];
    }
    EXPECT_EQ(merged["cases"][5]["status"], "failed");
    EXPECT_THAT(merged["cases"][5]["error"]["message"].get<std::string>(),
                HasSubstr("Case6.nii.gz: shorter than a NIfTI header"));
    std::multiset<std::string> ids;
    for (int k = 0; k < shards; ++k) {
      const json rec = load(out + "/shards/run-" + std::to_string(k) + "-of-" +
                            std::to_string(shards) + ".json");
      EXPECT_THAT(rec["shard"]["source"].get<std::string>(), HasSubstr(source));
      for (const auto& c : rec["cases"]) ids.insert(c["id"].get<std::string>());
    }
    EXPECT_EQ(ids,
              (std::multiset<std::string>{"Case1", "Case2", "Case3", "Case4", "Case5", "Case6"}));
    for (const char* f : {"metrics/summary.json", "metrics/cases.csv", "metrics/confusion.csv",
                          "metrics/statistics.csv"}) {
      if (!fs::exists(d / "single" / f) && std::string(f) == "metrics/statistics.csv") continue;
      EXPECT_EQ(spineparse::read_file((d / "single" / f).string()),
                spineparse::read_file(out + "/" + f))
          << f;
    }
    for (int i = 1; i <= 5; ++i)
      EXPECT_TRUE(fs::exists(out + "/seg_Case" + std::to_string(i) + ".nii.gz")) << i;
    for (const auto& e : fs::recursive_directory_iterator(out))
      EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  }
};

// Starts a one-node cluster in `dir` (tests/cluster/slurm-cluster) and stops it when destroyed.
class SlurmCluster {
 public:
  explicit SlurmCluster(const fs::path& dir) : dir_(dir.string()) {
    const auto r = shell(script() + " start " + dir_);
    started_ = r.code == 0;
    if (started_) ::setenv("SLURM_CONF", (dir / "slurm.conf").c_str(), 1);
    log_ = r.output;
  }
  ~SlurmCluster() {
    if (started_) shell(script() + " stop " + dir_);
    ::unsetenv("SLURM_CONF");
  }
  bool started() const { return started_; }
  const std::string& log() const { return log_; }

  // Waits until none of the jobs is queued or running; false after `seconds`.
  static bool wait_for(const std::string& jobs, int seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < end) {
      const auto r = shell("squeue -h -j " + jobs + " -o %i");
      if (r.code == 0 && r.output.find_first_not_of(" \n") == std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return false;
  }

 private:
  static std::string script() {
    return spineparse::testing::source_dir() + "/tests/cluster/slurm-cluster";
  }
  std::string dir_, log_;
  bool started_ = false;
};

}  // namespace

TEST(Cluster, SlurmJobArrayAndMergeJobEqualOneProcess) {
  NEED_TOOLS("slurmctld", "slurmd", "sbatch", "squeue");
  Cohort c;
  SlurmCluster cluster(c.d / "slurm");
  ASSERT_TRUE(cluster.started()) << cluster.log();
  const std::string out = (c.d / "sharded").string();
  auto r =
      sp("slurm " + c.graph + " --input " + c.input + " --output " + out +
         " --shards 3 --sbatch-arg=--cpus-per-task=1 --sbatch-arg=--time=15 --submit" + c.plugins);
  ASSERT_EQ(r.code, 0) << r.output;
  std::smatch m;
  ASSERT_TRUE(
      std::regex_search(r.output, m, std::regex(R"(array job (\d+) \(3 tasks.*merge job (\d+))")))
      << r.output;
  ASSERT_TRUE(SlurmCluster::wait_for(m[1].str() + "," + m[2].str(), 600))
      << shell("squeue; tail -n 30 " + (c.d / "slurm/slurmctld.log").string()).output;
  const std::string merge_log = spineparse::read_file(out + "/slurm/merge.log");
  EXPECT_THAT(merge_log, HasSubstr("merged 3 shards: 5 ok, 1 failed, 0 skipped of 6 cases"));
  EXPECT_THAT(spineparse::read_file(out + "/slurm/shard-1.log"),
              HasSubstr("shard 1 of 3 (Slurm job array (task 1))"));
  c.expect_merged_equals_single(out, 3, "Slurm job array");
}

TEST(Cluster, MpirunWithShardAutoThenMergeEqualsOneProcess) {
  NEED_TOOLS("mpirun");
  Cohort c;
  const std::string out = (c.d / "sharded").string();
  auto r = shell("mpirun --allow-run-as-root --oversubscribe -np 3 " + std::string(SPINEPARSE_CLI) +
                 " run " + c.graph + " --input " + c.input + " --output " + out +
                 " --shard auto --threads 1 --progress none" + c.plugins);
  for (int k = 0; k < 3; ++k)
    EXPECT_THAT(r.output, HasSubstr("shard " + std::to_string(k) + " of 3 (Open MPI)"));
  const std::string ranks = r.output;
  r = sp("merge " + out);
  EXPECT_EQ(r.code, 1) << r.output << "\nmpirun:\n" << ranks;  // merged; Case6 failed
  EXPECT_THAT(r.output, HasSubstr("merged 3 shards: 5 ok, 1 failed, 0 skipped of 6 cases"));
  if (r.code == 1) c.expect_merged_equals_single(out, 3, "Open MPI");
}

TEST(Cluster, SlurmTrainsTheFiveFoldsAsAnArrayThenCrossValidates) {
  NEED_TOOLS("slurmctld", "slurmd", "sbatch", "squeue");
  if (!has_networks()) GTEST_SKIP() << "a build without LibTorch does not train";
  TempDir d;
  const std::string data = (d / "cohort").string(), out = (d / "training").string();
  ASSERT_EQ(sp("synth --cases 8 --size 70 90 --seed 3 --out " + data).code, 0);
  const std::string config = (d / "tiny.json").string();
  spineparse::write_file_atomic(config, R"({"coarse_width": 0.125, "coarse_height": 32,
    "coarse_cols": 64, "deeplab_epochs": 1, "gcsn_epochs": 1, "fine_fmaps": 4, "fine_height": 32,
    "fine_cols": 64, "fine_epochs": 1, "iterations_per_epoch": 1})");
  SlurmCluster cluster(d / "slurm");
  ASSERT_TRUE(cluster.started()) << cluster.log();
  std::smatch m;
  for (const std::string what : {"coarse", "fine"}) {
    auto r = sp("slurm-train " + what + " --data " + data + " --output " + out + " --config " +
                config + " --sbatch-arg=--cpus-per-task=1 --submit");
    ASSERT_EQ(r.code, 0) << r.output;
    ASSERT_TRUE(std::regex_search(r.output, m, std::regex(R"(training array job (\d+))")));
    std::string jobs = m[1].str();
    if (what == "fine") {
      ASSERT_TRUE(std::regex_search(r.output, m, std::regex(R"(cross-validation job (\d+))")));
      jobs += "," + m[1].str();
    }
    ASSERT_TRUE(SlurmCluster::wait_for(jobs, 600)) << shell("squeue").output;
    for (int k = 1; k <= 5; ++k) {
      const std::string fold = out + "/fold" + std::to_string(k);
      EXPECT_TRUE(
          fs::exists(fold + (what == "coarse" ? "/coarse/gcsn" : "/fine") + "/best.safetensors"))
          << what << " fold " << k << ": "
          << shell("tail -n 5 " + out + "/slurm/train-" + what + "-fold" + std::to_string(k) +
                   ".log")
                 .output;
    }
  }
  EXPECT_THAT(spineparse::read_file(out + "/slurm/train-fine-cv.log"),
              HasSubstr("cross-validated Dice over 8 cases"));
}
