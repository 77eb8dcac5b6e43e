// The spineparse binary end to end: exit codes, messages, outputs.
#include <gmock/gmock.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../io/io_fixtures.hpp"
#include "spineparse/files.hpp"
#include "test_util.hpp"
#include "volume_io.hpp"

using spineparse::testing::TempDir;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {
struct Result {
  int code;
  std::string output;
};
Result sp(const std::string& args) {
  const std::string cmd = std::string(SPINEPARSE_CLI) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  while (std::size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}
std::string graph(const std::string& name) { return spineparse::testing::source_dir() + "/graphs/" + name; }
}  // namespace

TEST(Cli, DefaultGraphOverACohortWithACorruptAndA4DFile) {
  TempDir d;
  const std::string cohort = (d / "cohort").string();
  auto r = sp("synth --cases 3 --size 64 96 --seed 4 --out " + cohort);
  ASSERT_EQ(r.code, 0) << r.output;
  { std::ofstream(d / "cohort/original_mr/Case4.nii.gz", std::ios::binary) << std::string(300, 'x'); }
  spineparse::testing::write_itk<float, 4>((d / "cohort/original_mr/Case5.nii.gz").string(), {16, 16, 4, 3},
                                           [](auto i) { return i[0]; });
  r = sp("run " + graph("default.json") + " --input " + cohort + " --output " + (d / "out").string() + " --progress plain");
  EXPECT_EQ(r.code, 1) << r.output;  // completed, some cases failed
  EXPECT_THAT(r.output, HasSubstr("3 ok, 2 failed"));
  EXPECT_THAT(r.output, HasSubstr("Case4.nii.gz: not an image file"));
  EXPECT_THAT(r.output, HasSubstr("is 4-D (16x16x4x3)"));
  EXPECT_THAT(r.output, HasSubstr("[progress] cases 5/5"));
  auto j = nlohmann::json::parse(spineparse::read_file((d / "out/run.json").string()));
  EXPECT_EQ(j["counts"]["failed"], 2);
  EXPECT_EQ(j["cases"][3]["error"]["node"], "read");
  for (int i = 1; i <= 3; ++i) {
    const std::string id = "Case" + std::to_string(i);
    auto in = spineparse::io::read_image(cohort + "/original_mr/" + id + ".nii.gz");
    auto out = spineparse::io::read_image((d / ("out/norm_" + id + ".nii.gz")).string());
    EXPECT_TRUE(out.geometry.same_as(in.geometry, 1e-6)) << id;
    EXPECT_EQ(out.data->shape(), in.data->shape());
  }
  // --resume: everything complete is skipped, the failed ones are tried again.
  r = sp("run " + graph("default.json") + " --input " + cohort + " --output " + (d / "out").string() + " --resume --progress none");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.output, HasSubstr("0 ok, 2 failed, 3 skipped"));
}

TEST(Cli, ValidateReportsEveryProblemAndExits2) {
  TempDir d;
  const std::string g = (d / "bad.json").string();
  std::ofstream(g) << R"({"schema_version": 1, "nodes": [{"id": "read", "stage": "io.read_dataset", "params": {"layout": "weird"}},
    {"id": "w", "stage": "io.write_nifti", "params": {"feild": "x"}}]})";
  auto r = sp("validate " + g);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("3 problems"));
  EXPECT_THAT(r.output, HasSubstr("/nodes/0/params/layout"));
  EXPECT_THAT(r.output, HasSubstr("/nodes/1/params/feild"));
  EXPECT_THAT(r.output, HasSubstr("reads case field 'labels'"));
  r = sp("validate " + graph("default.json"));
  EXPECT_EQ(r.code, 0) << r.output;
  r = sp("run " + graph("default.json") + " --set write.nope=1 --input /tmp");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("has no parameter 'nope'"));
  r = sp("run /nonexistent.json");
  EXPECT_EQ(r.code, 2);
}

TEST(Cli, StagesListsKindsWithParameters) {
  auto r = sp("stages");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("io.read_dataset"));
  EXPECT_THAT(r.output, HasSubstr("max_slices"));
  EXPECT_THAT(r.output, HasSubstr("one of: fixed, zscore"));
}

TEST(Cli, SynthIsDeterministicAndHelpWorks) {
  TempDir d;
  ASSERT_EQ(sp("synth -n 2 --size 40 50 --seed 9 --out " + (d / "a").string()).code, 0);
  ASSERT_EQ(sp("synth -n 2 --size 40 50 --seed 9 --out " + (d / "b").string()).code, 0);
  EXPECT_EQ(spineparse::read_file((d / "a/original_mr/Case2.nii.gz").string()),
            spineparse::read_file((d / "b/original_mr/Case2.nii.gz").string()));
  EXPECT_EQ(sp("synth --help").code, 0);
  EXPECT_EQ(sp("run --help").code, 0);
  EXPECT_EQ(sp("synth --cases 0 --out x").code, 2);
  EXPECT_EQ(sp("frobnicate").code, 2);
}

namespace {
std::string ref(const std::string& f) { return spineparse::testing::reference_dir() + "/" + f; }
}  // namespace

TEST(Cli, ImportCheckpointThenRunTheWholeGraphThroughThePlugins) {
  if (!fs::exists(ref("manifest.json"))) GTEST_SKIP() << "no ../shared/reference";
  TempDir d;
  auto r = sp("import-checkpoint " + ref("gcsn_best_checkpoint.pytorch") + " --model gcsn --out " + (d / "gcsn.safetensors").string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("tensors (gcsn)"));
  r = sp("import-checkpoint " + ref("gcsn_best_checkpoint.pytorch") + " --model resunet2d --out " + (d / "x.safetensors").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("does not fit the network"));
  EXPECT_FALSE(fs::exists(d / "x.safetensors"));

  fs::create_directories(d / "in/original_mr");
  fs::copy_file(ref("raw.nii.gz"), d / "in/original_mr/Case1.nii.gz");
  r = sp("run " + graph("spineparsenet.json") + " --input " + (d / "in").string() + " --output " + (d / "out").string() +
         " --set coarse.weights=" + (d / "gcsn.safetensors").string() + " --set fine.weights=" + ref("resunet2d_weights.safetensors") +
         " --progress none");
  ASSERT_EQ(r.code, 0) << r.output;
  auto got = spineparse::io::read_labels((d / "out/seg_Case1.nii.gz").string(), 19);
  auto want = spineparse::io::read_labels(ref("seg_expected.nii.gz"), 19);
  ASSERT_EQ(got.data->shape(), want.data->shape());
  std::int64_t same = 0;
  for (std::int64_t i = 0; i < want.data->numel(); ++i) same += got.data->data<std::uint8_t>()[i] == want.data->data<std::uint8_t>()[i];
  EXPECT_GE(static_cast<double>(same) / want.data->numel(), 0.999);
  auto j = nlohmann::json::parse(spineparse::read_file((d / "out/run.json").string()));
  std::vector<std::string> plugins;
  for (const auto& p : j["plugins"]) plugins.push_back(p["name"]);
  EXPECT_THAT(plugins, ::testing::IsSupersetOf({"io", "coarse", "fine"}));
  EXPECT_TRUE(j["cases"][0]["stage_seconds"].contains("fine"));
}
