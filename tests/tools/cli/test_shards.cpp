// Sharded runs through the binary: shards, merge, locks, interrupted shards, slurm scripts.
#include <gmock/gmock.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "cli_util.hpp"
#include "spineparse/files.hpp"

using nlohmann::json;
using spineparse::testing::TempDir;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {
json load(const fs::path& p) { return json::parse(spineparse::read_file(p.string())); }

// Labels from the masks (no networks), scored: a fast graph with every whole-run product.
// QC with a plain calibration (the signals that need no network).
std::string scored_graph(const TempDir& d, int delay_ms = 0) {
  const std::string path = (d / "scored.json").string();
  spineparse::write_file_atomic((d / "qc.json").string(), R"({
    "structure": {"bias": 2, "weights": {"order_wrong": -6, "fragmented": -8}},
    "case": {"bias": -4, "weights": {"mean_confidence": 9, "missing": -1}}})");
  spineparse::write_file_atomic(path, R"({"schema_version": 1, "max_in_flight": 1, "nodes": [
    {"id": "read", "stage": "io.read_dataset"},
    {"id": "pause", "stage": "test.delay", "params": {"ms": )" +
                                          std::to_string(delay_ms) + R"(}},
    {"id": "labels", "stage": "test.mask_as_labels"},
    {"id": "qc", "stage": "metrics.qc", "params": {"calibration": "qc.json"}},
    {"id": "evaluate", "stage": "metrics.evaluate"},
    {"id": "write", "stage": "io.write_nifti", "params": {"field": "image", "name": "norm_{id}.nii.gz"}}]})");
  return path;
}

// A cohort of `n` synthetic cases plus a corrupt one (Case<n+1>).
std::string cohort_with_a_corrupt_case(const TempDir& d, int n) {
  const std::string cohort = (d / "cohort").string();
  EXPECT_EQ(
      sp("synth --cases " + std::to_string(n) + " --size 40 56 --seed 11 --out " + cohort).code, 0);
  std::ofstream(d / ("cohort/original_mr/Case" + std::to_string(n + 1) + ".nii.gz"))
      << "not a volume";
  return cohort;
}

std::string plugins() {
  return " --threads 1 --plugin-dir " + spineparse::testing::test_plugin_dir();
}

// Case by case: id, status, error and metrics.
void expect_same_cases(const json& a, const json& b) {
  ASSERT_EQ(a["cases"].size(), b["cases"].size());
  for (std::size_t i = 0; i < a["cases"].size(); ++i) {
    const json &x = a["cases"][i], &y = b["cases"][i];
    EXPECT_EQ(x["id"], y["id"]);
    EXPECT_EQ(x["status"], y["status"]) << x["id"];
    EXPECT_EQ(x.value("error", json()), y.value("error", json())) << x["id"];
    EXPECT_EQ(x.value("metrics", json()), y.value("metrics", json())) << x["id"];
    EXPECT_EQ(x.value("qc", json()), y.value("qc", json())) << x["id"];
  }
}
}  // namespace

TEST(Shards, MergedShardsEqualOneProcessCaseByCaseAndMergeIsIdempotent) {
  TempDir d;
  const std::string cohort = cohort_with_a_corrupt_case(d, 7);
  const std::string g = scored_graph(d), out = (d / "sharded").string();
  auto r = sp("run " + g + " --input " + cohort + " --output " + (d / "single").string() +
              plugins() + " --progress none");
  ASSERT_EQ(r.code, 1) << r.output;  // the corrupt case fails
  for (int k : {0, 1}) {
    r = sp("run " + g + " --input " + cohort + " --output " + out + " --shard " +
           std::to_string(k) + "/3" + plugins() + " --progress none");
    EXPECT_THAT(r.output, HasSubstr("shard " + std::to_string(k) + " of 3"));
    EXPECT_THAT(r.output, HasSubstr("spineparse merge"));
    EXPECT_EQ(r.code, 0) << r.output;  // shard 1 holds the corrupt Case8, and ran
  }
  EXPECT_FALSE(fs::exists(out + "/metrics/summary.json"));  // whole-run products wait for merge
  // A shard missing: nothing is written, the shard is named.
  r = sp("merge " + out);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("shard(s) 2 of 3 have no record"));
  EXPECT_FALSE(fs::exists(out + "/run.json"));
  r = shell("env RANK=2 WORLD_SIZE=3 " + std::string(SPINEPARSE_CLI) + " run " + g + " --input " +
            cohort + " --output " + out + " --shard auto" + plugins() + " --progress none");
  EXPECT_THAT(r.output, HasSubstr("shard 2 of 3 (torchrun)"));
  r = sp("merge " + out);
  EXPECT_EQ(r.code, 1) << r.output;  // merged; the corrupt case failed
  EXPECT_THAT(r.output, HasSubstr("merged 3 shards: 7 ok, 1 failed, 0 skipped of 8 cases"));
  EXPECT_THAT(r.output, HasSubstr("Case8"));
  const json single = load(d / "single/run.json"), merged = load(out + "/run.json");
  expect_same_cases(single, merged);
  EXPECT_EQ(merged["shards"].size(), 3u);
  std::set<std::string> ids;  // every case in exactly one shard
  for (int k = 0; k < 3; ++k) {
    const json shard = load(out + "/shards/run-" + std::to_string(k) + "-of-3.json");
    for (const auto& c : shard["cases"])
      EXPECT_TRUE(ids.insert(c["id"].get<std::string>()).second) << c["id"];
  }
  EXPECT_EQ(ids.size(), 8u);
  EXPECT_TRUE(single["cases"][0].contains("qc"));
  const std::string review = spineparse::read_file((d / "single/qc/review.csv").string());
  EXPECT_THAT(review, HasSubstr("\nCase8,fail,0.0000,run_failed: [read]"));  // the corrupt one first
  for (const char* f : {"metrics/summary.json", "metrics/cases.csv", "metrics/confusion.csv",
                        "qc/review.csv"})
    EXPECT_EQ(spineparse::read_file((d / "single" / f).string()),
              spineparse::read_file(out + "/" + f))
        << f;
  const std::string before = spineparse::read_file(out + "/run.json");
  EXPECT_EQ(sp("merge " + out).code, 1);
  EXPECT_EQ(spineparse::read_file(out + "/run.json"), before);
}

TEST(Shards, ShardsAndMergeRunFromDifferentFoldersWithRelativePaths) {
  // A graph in its own folder naming a file relative to that folder; shards started from two
  // other folders with relative arguments, the merge from a third.
  TempDir d;
  fs::create_directories(d / "graphs");
  fs::create_directories(d / "data");
  for (const char* w : {"a", "b", "c"}) fs::create_directories(d / w);
  spineparse::write_file_atomic((d / "data/needed.txt").string(), "x");
  spineparse::write_file_atomic((d / "graphs/g.json").string(), R"({"schema_version": 1, "nodes": [
    {"id": "read", "stage": "io.read_dataset"},
    {"id": "needs", "stage": "test.needs_file", "params": {"file": "../data/needed.txt"}},
    {"id": "labels", "stage": "test.mask_as_labels"},
    {"id": "evaluate", "stage": "metrics.evaluate"}]})");
  ASSERT_EQ(sp("synth --cases 3 --size 40 56 --seed 5 --out " + (d / "cohort").string()).code, 0);
  const std::string bin = SPINEPARSE_CLI;
  for (const auto& [k, where] : {std::pair{0, "a"}, {1, "b"}}) {
    auto r = shell("cd " + (d / where).string() + " && " + bin +
                   " run ../graphs/g.json --input ../cohort --output ../out --shard " +
                   std::to_string(k) + "/2" + plugins() + " --progress none");
    ASSERT_EQ(r.code, 0) << r.output;
  }
  auto r = shell("cd " + (d / "c").string() + " && " + bin + " merge ../out --plugin-dir " +
                 spineparse::testing::test_plugin_dir());
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(d / "out/metrics/cases.csv")) << r.output;
  const json merged = load(d / "out/run.json");
  EXPECT_EQ(merged["graph"]["nodes"][1]["params"]["file"],
            fs::weakly_canonical(d / "data/needed.txt").string());
  EXPECT_EQ(merged["input_dir"], fs::weakly_canonical(d / "cohort").string());
}

TEST(Shards, LocksLetShardsShareAFolderButNotTheSameShardTwice) {
  TempDir d;
  const std::string cohort = cohort_with_a_corrupt_case(d, 4);
  const std::string g = scored_graph(d, 100), out = (d / "out").string();
  const std::string run = std::string(SPINEPARSE_CLI) + " run " + g + " --input " + cohort +
                          " --output " + out + plugins() + " --progress none";
  // While shard 0/2 holds its lock (a minute per case; stopped at the end by two Ctrl-Cs): shard
  // 1/2 may run, shard 0/2 may not, nor an unsharded run or merge. Its lock file names its owner
  // once the lock is held.
  auto r = shell("bash -c '" + run + " --shard 0/2 --set pause.ms=60000 & pid=$!; while [ ! -s " +
                 out + "/shards/.0-of-2.lock ]; do sleep 0.02; done; " + run +
                 " --shard 0/2; echo SAME=$?; " + run + "; echo WHOLE=$?; " + SPINEPARSE_CLI +
                 " merge " + out + "; echo MERGE=$?; " + run +
                 " --shard 1/2; echo OTHER=$?; kill -INT $pid; sleep 0.2; kill -INT $pid; wait "
                 "$pid; echo FIRST=$?'");
  EXPECT_THAT(r.output, HasSubstr("shard 0/2 of output folder"));
  EXPECT_THAT(r.output, HasSubstr("SAME=2"));
  EXPECT_THAT(r.output, HasSubstr("shards of a sharded run"));
  EXPECT_THAT(r.output, HasSubstr("WHOLE=2"));
  EXPECT_THAT(r.output, HasSubstr("MERGE=2"));
  EXPECT_THAT(r.output, HasSubstr("OTHER=0"));
  EXPECT_THAT(r.output, HasSubstr("FIRST=130"));  // stopped at once by the second Ctrl-C
  // Shard 1/2 is whole; shard 0/2 never wrote a record, and merge says so.
  r = sp("merge " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("shard(s) 0 of 2 have no record"));
}

TEST(Shards, AnInterruptedShardIsNamedByMergeAndResumeCompletesIt) {
  TempDir d;
  const std::string cohort = cohort_with_a_corrupt_case(d, 5);
  const std::string g = scored_graph(d, 300), out = (d / "out").string();
  const std::string args = g + " --input " + cohort + " --output " + out + plugins();
  auto r = shell("bash -c '" + std::string(SPINEPARSE_CLI) + " run " + args +
                 " --shard 0/2 --progress none & pid=$!; while [ ! -e " + out +
                 "/norm_Case1.nii.gz ]; do sleep 0.02; done; kill -INT $pid; wait $pid; echo "
                 "EXIT=$?'");
  EXPECT_THAT(r.output, HasSubstr("EXIT=130"));
  EXPECT_THAT(r.output, HasSubstr("--shard 0/2 --resume"));  // the command that finishes it
  // A shard that ran exits 0 with failed cases (mpirun would stop the other ranks otherwise);
  // its record and merge report them.
  ASSERT_EQ(sp("run " + args + " --shard 1/2 --progress none").code, 0);
  r = sp("merge " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("(shard 0) did not run: run that shard again with --resume"));
  r = sp("run " + args + " --shard 0/2 --resume --progress none");
  EXPECT_EQ(r.code, 0) << r.output;
  r = sp("merge " + out);
  EXPECT_EQ(r.code, 1) << r.output;
  const json merged = load(out + "/run.json");
  // The cases shard 0 finished before the interrupt are skipped by its resumed run.
  EXPECT_GE(merged["counts"]["skipped"].get<int>(), 1);
  EXPECT_EQ(merged["counts"]["ok"].get<int>() + merged["counts"]["skipped"].get<int>(), 5);
  EXPECT_EQ(merged["counts"]["failed"], 1);
  EXPECT_EQ(load(out + "/metrics/summary.json")["cases_scored"], 5);
  EXPECT_EQ(merged["counts"]["total"], 6);
}

TEST(Shards, MixedSplitsAndMissingEnvironmentAreRefusedWithReasons) {
  TempDir d;
  const std::string cohort = cohort_with_a_corrupt_case(d, 2);
  const std::string g = scored_graph(d), out = (d / "out").string();
  const std::string args =
      "run " + g + " --input " + cohort + " --output " + out + plugins() + " --progress none";
  sp(args + " --shard 0/2");
  sp(args + " --shard 0/3");
  auto r = sp("merge " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("belong to different splits"));
  r = shell("env -i PATH=/usr/bin:/bin " + std::string(SPINEPARSE_CLI) + " " + args +
            " --shard auto");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("looked for SLURM_ARRAY_TASK_ID"));
  r = sp(args + " --shard 3/3");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("outside 0..2"));
  r = sp("merge " + (d / "nothing").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("no shard records"));
}

TEST(Shards, SlurmWritesAnArrayAndAMergeJobThatWaitsForIt) {
  TempDir d;
  const std::string cohort = cohort_with_a_corrupt_case(d, 2);
  const std::string out = (d / "out").string();
  auto r = sp("slurm " + scored_graph(d) + " --input " + cohort + " --output " + out +
              " --shards 4 --sbatch-arg=--time=1:00:00 --sbatch-arg=--gres=gpu:1 --plugin-dir " +
              spineparse::testing::test_plugin_dir());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--dependency=afterany:"));
  const std::string array = spineparse::read_file(out + "/slurm/run.sbatch");
  const std::string merge = spineparse::read_file(out + "/slurm/merge.sbatch");
  EXPECT_THAT(array, HasSubstr("#SBATCH --array=0-3\n"));
  EXPECT_THAT(array, HasSubstr("#SBATCH --gres=gpu:1\n"));
  EXPECT_THAT(array, HasSubstr("--shard auto --shards 4 --resume"));
  EXPECT_THAT(merge, HasSubstr("#SBATCH --time=1:00:00\n"));
  EXPECT_THAT(merge, ::testing::Not(HasSubstr("gres")));
  EXPECT_THAT(merge, HasSubstr(" merge "));
  // The script runs as a shell would: bash -n accepts it.
  EXPECT_EQ(shell("bash -n " + out + "/slurm/run.sbatch").code, 0);
  r = sp("slurm " + scored_graph(d) + " --input " + cohort + " --output " + out +
         " --shards 2 --sbatch-arg=--array=0-9 --plugin-dir " +
         spineparse::testing::test_plugin_dir());
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("sets the array"));
}
