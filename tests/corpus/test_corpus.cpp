// The bad-input corpus end to end: every kind dropped into one cohort with good cases, run by the
// spineparse binary (read -> normalise -> write). Each bad case fails alone with its reason, each
// unusual but valid one is read (with its warning where a standard fallback applies), the good
// ones are written with their geometry, nothing hangs, and peak memory stays small although
// several headers claim tens of gigabytes.
#include <gmock/gmock.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "corpus/corpus.hpp"
#include "io/dicom.hpp"
#include "io/volume_io.hpp"
#include "spineparse/files.hpp"
#include "test_util.hpp"

using spineparse::testing::TempDir;
using ::testing::HasSubstr;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Child {
  int code = -1;
  long max_rss_kb = 0;
  bool timed_out = false;
};

// Runs argv with stdout/stderr to `log`, killing it after `timeout_s`.
Child run_child(const std::vector<std::string>& argv, const std::string& log, int timeout_s) {
  const pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "w", stdout);
    (void)f;
    dup2(fileno(stdout), fileno(stderr));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  Child c;
  const auto start = std::chrono::steady_clock::now();
  int status = 0;
  struct rusage ru {};
  while (true) {
    const pid_t r = wait4(pid, &status, WNOHANG, &ru);
    if (r == pid) break;
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(timeout_s)) {
      kill(pid, SIGKILL);
      wait4(pid, &status, 0, &ru);
      c.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  c.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  c.max_rss_kb = ru.ru_maxrss;
  return c;
}

const char* kGraph = R"({"schema_version": 1, "max_in_flight": 4, "nodes": [
  {"id": "read", "stage": "io.read_dataset", "params": {"layout": "flat"}},
  {"id": "normalise", "stage": "io.normalise"},
  {"id": "write", "stage": "io.write_nifti", "params": {"field": "image", "name": "norm_{id}.nii.gz"}}]})";

// The run.json records of one kind: the case with its id, or those named id.<ext> (a kind with
// several files).
std::vector<json> records_of(const json& run, const std::string& id) {
  std::vector<json> out;
  for (const auto& c : run["cases"]) {
    const std::string cid = c["id"];
    const std::string path = c["attrs"].value("image_path", "");
    if (cid == id || cid.rfind(id + ".", 0) == 0 ||
        path.find("/" + id + "/") != std::string::npos)  // a DICOM kind's folder
      out.push_back(c);
  }
  return out;
}

// The volume a case was read from: its file, or its DICOM series.
spineparse::io::Volume source_of(const json& c) {
  const auto& a = c["attrs"];
  if (a.contains("dicom_files"))
    return spineparse::io::read_dicom_series(
        spineparse::io::file_list(a["dicom_files"].get<std::string>()));
  return spineparse::io::read_image(a["image_path"].get<std::string>());
}

}  // namespace

TEST(Corpus, EveryBadFileFailsAloneAndEveryGoodOneIsWrittenWithItsGeometry) {
  TempDir d;
  const fs::path in = d / "cohort", out = d / "out";
  fs::create_directories(in);
  const auto kinds = spineparse::testing::corpus_kinds();
  ASSERT_GE(kinds.size(), 60u);
  const std::vector<std::string> good = {"good_1", "good_2", "good_3"};
  for (const auto& g : good) spineparse::testing::write_good_case(in, g);
  for (const auto& k : kinds) k.make(in, k.name);
  spineparse::write_file_atomic((d / "graph.json").string(), kGraph);

  const std::string log = (d / "log.txt").string();
  const Child c =
      run_child({SPINEPARSE_CLI, "run", (d / "graph.json").string(), "--input", in.string(),
                 "--output", out.string(), "--threads", "2", "--progress", "none"},
                log, 300);
  const std::string output = spineparse::read_file(log);
  if (const char* keep = std::getenv("SPINEPARSE_CORPUS_KEEP"))  // to look into a failure
    EXPECT_EQ(std::system(("cp -a '" + d.str() + "' '" + keep + "'").c_str()), 0);
  ASSERT_FALSE(c.timed_out) << output;
  EXPECT_EQ(c.code, 1) << output;  // some cases failed, the run completed
  ASSERT_TRUE(fs::exists(out / "run.json")) << output;
  const json run = json::parse(spineparse::read_file((out / "run.json").string()));

  std::printf("%-34s %-8s %s\n", "kind", "outcome", "message or warning");
  for (const auto& k : kinds) {
    const auto recs = records_of(run, k.name);
    if (k.expect == "absent") {
      EXPECT_TRUE(recs.empty()) << k.name;
      std::printf("%-34s %-8s\n", k.name.c_str(), "absent");
      continue;
    }
    ASSERT_FALSE(recs.empty()) << k.name << " vanished from the run";
    EXPECT_GE(recs.size(), static_cast<std::size_t>(k.min_records)) << k.name;
    std::set<std::string> statuses;
    for (const auto& r : recs) {
      const std::string status = r["status"];
      statuses.insert(status);
      std::string said;
      if (status == "failed") said = r["error"]["message"];
      if (status == "skipped") said = r["attrs"].value("skipped", "");
      if (r.contains("warnings")) said = r["warnings"][0];
      std::printf("%-34s %-8s %s\n", k.name.c_str(), status.c_str(), said.c_str());
      if (k.expect == "ok,skipped") {
        EXPECT_TRUE(status == "ok" || status == "skipped") << k.name << ": " << said;
        if (status == "skipped") {
          EXPECT_THAT(said, HasSubstr(k.message)) << k.name;
        }
        continue;
      }
      EXPECT_EQ(status, k.expect == "warning" ? "ok" : k.expect) << k.name << ": " << said;
      if (k.expect == "skipped") {
        EXPECT_THAT(said, HasSubstr(k.message)) << k.name;
      }
      if (k.expect == "failed") {
        EXPECT_EQ(r["error"]["node"], "read") << k.name;
        EXPECT_THAT(said, HasSubstr(k.message)) << k.name;
      }
      if (k.expect == "warning") {
        EXPECT_THAT(said, HasSubstr(k.message)) << k.name;
      }
      if (k.expect == "ok") {
        EXPECT_FALSE(r.contains("warnings")) << k.name << ": " << said;
      }
    }
  }
  // Good cases and valid unusual kinds: written, and with the geometry of their input.
  for (const auto& c2 : run["cases"]) {
    if (c2["status"] != "ok") continue;
    const std::string id = c2["id"];
    const std::string written = (out / ("norm_" + id + ".nii.gz")).string();
    ASSERT_TRUE(fs::exists(written)) << id;
    const auto a = source_of(c2);
    const auto b = spineparse::io::read_image(written);
    EXPECT_EQ(a.data->shape(), b.data->shape()) << id;
    EXPECT_TRUE(a.geometry.same_as(b.geometry, 1e-5))
        << id << ": " << a.geometry.describe() << " vs " << b.geometry.describe();
  }
  for (const auto& g : good) EXPECT_EQ(records_of(run, g).at(0)["status"], "ok") << g;
  // What was read is what the files hold: every corpus volume stores v = x + 2y + 3z + 1 at file
  // index (x, y, z) (the scaled kind 2v - 3), whatever its format, byte order or compression.
  for (const auto& c2 : run["cases"]) {
    if (c2["status"] != "ok") continue;
    const std::string id = c2["id"];
    const auto v = source_of(c2);
    const auto& a = *v.data;
    const std::int64_t D = a.dim(0), H = a.dim(1), W = a.dim(2);
    std::int64_t wrong = 0;
    for (std::int64_t z = 0; z < D; ++z)
      for (std::int64_t x = 0; x < H; ++x)
        for (std::int64_t y = 0; y < W; ++y) {
          float want = static_cast<float>(x + 2 * y + 3 * z + 1);
          if (id == "n1_slope_scaled") want = 2 * want - 3;
          wrong += a.data<float>()[(z * H + x) * W + y] != want;
        }
    EXPECT_EQ(wrong, 0) << id << ": voxels differ from what the file stores";
  }
  // Headers claiming up to 15 GB were refused before allocation.
  std::printf("peak resident memory of the run: %.1f MB\n", c.max_rss_kb / 1024.0);
  EXPECT_LT(c.max_rss_kb, 1024 * 1024) << "peak RSS " << c.max_rss_kb << " kB";
  // Nothing half-written is left behind.
  for (const auto& e : fs::recursive_directory_iterator(out))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}
