// The spineparse binary end to end: exit codes, messages, outputs.
#include <dcmtk/dcmseg/segdoc.h>
#include <gmock/gmock.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cli_util.hpp"
#include "sr_util.hpp"
#include "dicom_fixtures.hpp"
#include "io/orientation.hpp"
#include "io/training_range.hpp"
#include "io/volume_io.hpp"
#include "io/weights_metadata.hpp"
#include "io_fixtures.hpp"
#include "metrics/measure_sr.hpp"
#include "spine/labels.hpp"
#include "spineparse/files.hpp"
#include "test_util.hpp"

using spineparse::testing::TempDir;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

TEST(Cli, DefaultGraphOverACohortWithACorruptAndA4DFile) {
  TempDir d;
  const std::string cohort = (d / "cohort").string();
  auto r = sp("synth --cases 3 --size 64 96 --seed 4 --out " + cohort);
  ASSERT_EQ(r.code, 0) << r.output;
  {
    std::ofstream(d / "cohort/original_mr/Case4.nii.gz", std::ios::binary) << std::string(300, 'x');
  }
  spineparse::testing::write_itk<float, 4>((d / "cohort/original_mr/Case5.nii.gz").string(),
                                           {16, 16, 4, 3}, [](auto i) { return i[0]; });
  r = sp("run " + graph("default.json") + " --input " + cohort + " --output " +
         (d / "out").string() + " --progress plain");
  EXPECT_EQ(r.code, 1) << r.output;  // completed, some cases failed
  EXPECT_THAT(r.output, HasSubstr("3 ok, 2 failed"));
  EXPECT_THAT(r.output, HasSubstr("Case4.nii.gz: shorter than a NIfTI header (300 bytes)"));
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
  r = sp("run " + graph("default.json") + " --input " + cohort + " --output " +
         (d / "out").string() + " --resume --progress none");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.output, HasSubstr("0 ok, 2 failed, 3 skipped"));
}

TEST(Cli, ValidateReportsEveryProblemAndExits2) {
  TempDir d;
  const std::string g = (d / "bad.json").string();
  std::ofstream(g)
      << R"({"schema_version": 1, "nodes": [{"id": "read", "stage": "io.read_dataset", "params": {"layout": "weird"}},
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

TEST(Cli, ValidateRefusesAnAttributeReadWithoutItsWriterNamingBothNodes) {
  // The orientation round trip without io.reorient, and a DICOM SR without the SEG it references.
  TempDir d;
  const std::string g = (d / "g.json").string();
  std::ofstream(g) << R"({"schema_version": 1, "nodes": [
    {"id": "read", "stage": "io.read_dataset"},
    {"id": "labels", "stage": "test.mask_as_labels"},
    {"id": "restore", "stage": "io.restore_orientation"},
    {"id": "measure", "stage": "metrics.measure"},
    {"id": "sr", "stage": "metrics.write_dicom_sr"},
    {"id": "seg", "stage": "io.write_dicom_seg"}]})";
  const std::string plugins = " --plugin-dir " + spineparse::testing::test_plugin_dir();
  auto r = sp("validate " + g + plugins);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("2 problems"));
  EXPECT_THAT(r.output, HasSubstr("node 'restore' (stage io.restore_orientation) reads case value "
                                  "'io.grid'"));
  EXPECT_THAT(r.output, HasSubstr("add a node of stage io.reorient before it"));
  EXPECT_THAT(r.output, HasSubstr("node 'sr' (stage metrics.write_dicom_sr) reads case attribute "
                                  "'output:dicom_seg', which no upstream node writes: node 'seg' "
                                  "(stage io.write_dicom_seg) writes it but does not run before "
                                  "it"));
  r = sp("stages io.restore_orientation");
  EXPECT_THAT(r.output, HasSubstr("io.grid"));
  r = sp("stages metrics.write_dicom_sr");
  EXPECT_THAT(r.output, HasSubstr("measurements"));
}

TEST(Cli, StagesListsKindsWithParameters) {
  auto r = sp("stages");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("io.read_dataset"));
  EXPECT_THAT(r.output, HasSubstr("max_slices"));
  EXPECT_THAT(r.output, HasSubstr("one of: fixed, zscore"));
  // The declared limits, as validation applies them, in every build (with or without LibTorch).
  r = sp("stages metrics.report");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("32 to 2048"));
  r = sp("stages io.read_dataset");
  EXPECT_THAT(r.output, HasSubstr("at least 1"));
}

// docs/stages.md is what the stages declare: regenerate it with
//   build/bin/spineparse stages --markdown > docs/stages.md
TEST(Cli, StagesDocumentationIsTheDeclarations) {
  if (!has_networks()) GTEST_SKIP() << "docs/stages.md lists the network stages too";
  if (sp("stages python.stage").code != 0) GTEST_SKIP() << "docs/stages.md lists python.stage too";
  auto r = shell(std::string(SPINEPARSE_CLI) + " stages --markdown 2>/dev/null");
  ASSERT_EQ(r.code, 0);
  const std::string doc =
      spineparse::read_file(spineparse::testing::source_dir() + "/docs/stages.md");
  EXPECT_EQ(r.output, doc) << "docs/stages.md is out of date: regenerate it with "
                              "spineparse stages --markdown > docs/stages.md";
  EXPECT_THAT(doc, HasSubstr("| `height` | int | `256` | at least 16 | rows of the fine grid |"));
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

// int8 for the fine network: without a calibration precision=int8 is refused naming the node
// and the command; `calibrate` records the ranges of one cohort and the labels' agreement on
// another in the weights file; a run at int8 then labels held-out cases as the fp32 run does on
// >= 99.9 % of voxels and says why it ran int8 in run.json, and auto picks int8 for those
// weights. The coarse node has no int8.
TEST(Cli, CalibrateThenInt8LabelsAsFp32Does) {
  if (!has_networks()) GTEST_SKIP() << "no network plugins in this build";
  TempDir d;
  const std::string src = spineparse::testing::source_dir();
  const std::string w = (d / "fine.safetensors").string(), graph = src + "/graphs/demo.json";
  fs::copy_file(src + "/models/demo_resunet2d.safetensors", w);
  ASSERT_EQ(sp("synth --cases 3 --seed 515 --out " + (d / "data").string()).code, 0);
  ASSERT_EQ(sp("synth --cases 2 --seed 616 --out " + (d / "check").string()).code, 0);
  auto run = [&](const std::string& out, const std::string& precision) {
    return sp("run " + graph + " --input " + (d / "check").string() + " --output " +
              (d / out).string() + " --set fine.weights=" + w +
              " --set fine.precision=" + precision);
  };
  auto r = run("refused", "int8");
  if (r.output.find("oneDNN's own API") != std::string::npos) GTEST_SKIP() << r.output;
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("node 'fine': precision=int8"));
  EXPECT_THAT(r.output, HasSubstr("spineparse calibrate " + w));

  r = sp("calibrate " + w + " --data " + (d / "data").string() + " --check " +
         (d / "check").string() + " --graph " + graph + " -o " + (d / "cal").string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("int8 ranges from 3 cases"));
  const auto cal =
      nlohmann::json::parse(spineparse::io::safetensors_metadata(w).at("int8_calibration"));
  EXPECT_EQ(cal["ranges"].size(), 56u);
  EXPECT_EQ(cal["agreement"]["cases"], 2);
  EXPECT_GE(cal["agreement"]["labels"].get<double>(), 0.999) << r.output;

  ASSERT_EQ(run("fp32", "fp32").code, 0);
  r = run("int8", "int8");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto record = nlohmann::json::parse(spineparse::read_file((d / "int8/run.json").string()));
  EXPECT_EQ(record["nodes"]["fine"]["precision"], "int8");
  EXPECT_THAT(record["nodes"]["fine"]["precision_reason"].get<std::string>(),
              HasSubstr("ranges from 3 cases"));
  double equal = 0, voxels = 0;
  for (const char* id : {"Case1", "Case2"}) {
    const auto a = spineparse::io::read_labels(
        (d / "fp32" / ("seg_" + std::string(id) + ".nii.gz")).string(), 19);
    const auto b = spineparse::io::read_labels(
        (d / "int8" / ("seg_" + std::string(id) + ".nii.gz")).string(), 19);
    ASSERT_EQ(a.data->shape(), b.data->shape());
    for (std::int64_t i = 0; i < a.data->numel(); ++i)
      equal += a.data->data<std::uint8_t>()[i] == b.data->data<std::uint8_t>()[i];
    voxels += static_cast<double>(a.data->numel());
  }
  EXPECT_GE(equal / voxels, 0.999);
  // auto takes int8 for weights whose calibration agreed on >= 99.9 %.
  ASSERT_EQ(run("auto", "auto").code, 0);
  const auto chosen = nlohmann::json::parse(spineparse::read_file((d / "auto/run.json").string()));
  EXPECT_EQ(chosen["nodes"]["fine"]["precision"], "int8");
  EXPECT_THAT(chosen["nodes"]["fine"]["precision_reason"].get<std::string>(),
              HasSubstr("auto: the weights record an int8 calibration"));
  r = sp("validate " + graph + " --set coarse.precision=int8");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("int8"));
}

TEST(Cli, ImportCheckpointThenRunTheWholeGraphThroughThePlugins) {
  if (!has_networks()) GTEST_SKIP() << "built without the network plugins";
  if (!fs::exists(ref("manifest.json"))) GTEST_SKIP() << "no ../shared/reference";
  TempDir d;
  auto r = sp("import-checkpoint " + ref("gcsn_best_checkpoint.pytorch") + " --model gcsn --out " +
              (d / "gcsn.safetensors").string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("tensors (gcsn)"));
  // The orientation the model was trained in, as the training files' headers state it (the
  // reference volume's header says RAS), is recorded for io.reorient.
  r = sp("import-checkpoint " + ref("gcsn_best_checkpoint.pytorch") + " --model gcsn --out " +
         (d / "gcsn_ras.safetensors").string() + " --orientation RAS");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(
      spineparse::io::safetensors_metadata((d / "gcsn_ras.safetensors").string())["orientation"],
      "RAS");
  EXPECT_EQ(
      spineparse::io::safetensors_metadata((d / "gcsn.safetensors").string()).count("orientation"),
      0u);
  r = sp("import-checkpoint " + ref("gcsn_best_checkpoint.pytorch") + " --model gcsn --out " +
         (d / "x.safetensors").string() + " --orientation PPL");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("'PPL' is not three letters"));
  r = sp("import-checkpoint " + ref("gcsn_best_checkpoint.pytorch") + " --model resunet2d --out " +
         (d / "x.safetensors").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("does not fit the network"));
  EXPECT_FALSE(fs::exists(d / "x.safetensors"));

  fs::create_directories(d / "in/original_mr");
  fs::copy_file(ref("raw.nii.gz"), d / "in/original_mr/Case1.nii.gz");
  r = sp("run " + graph("spineparsenet.json") + " --input " + (d / "in").string() + " --output " +
         (d / "out").string() + " --set coarse.weights=" + (d / "gcsn_ras.safetensors").string() +
         " --set fine.weights=" + ref("resunet2d_weights.safetensors") + " --progress none");
  ASSERT_EQ(r.code, 0) << r.output;
  auto got = spineparse::io::read_labels((d / "out/seg_Case1.nii.gz").string(), 19);
  auto want = spineparse::io::read_labels(ref("seg_expected.nii.gz"), 19);
  ASSERT_EQ(got.data->shape(), want.data->shape());
  std::int64_t same = 0;
  for (std::int64_t i = 0; i < want.data->numel(); ++i)
    same += got.data->data<std::uint8_t>()[i] == want.data->data<std::uint8_t>()[i];
  EXPECT_GE(static_cast<double>(same) / want.data->numel(), 0.999);
  auto j = nlohmann::json::parse(spineparse::read_file((d / "out/run.json").string()));
  std::vector<std::string> plugins;
  for (const auto& p : j["plugins"]) plugins.push_back(p["name"]);
  EXPECT_THAT(plugins, ::testing::IsSupersetOf({"io", "coarse", "fine"}));
  EXPECT_TRUE(j["cases"][0]["stage_seconds"].contains("fine"));
  EXPECT_EQ(j["cases"][0]["attrs"]["orientation_action"], "none: stored as RAS");
}

TEST(Cli, SpineParseNetGraphWritesMetricsOverlaysAndAReportThatEvaluateReproduces) {
  if (!has_networks()) GTEST_SKIP() << "built without the network plugins";
  if (!fs::exists(ref("manifest.json"))) GTEST_SKIP() << "no ../shared/reference";
  TempDir d;
  const std::string cohort = (d / "cohort").string(), out = (d / "out").string();
  ASSERT_EQ(sp("synth --cases 3 --size 80 100 --seed 21 --out " + cohort).code, 0);
  // The reference weights (random but fixed) on small network grids keep this quick.
  auto r = sp("run " + graph("spineparsenet.json") + " --input " + cohort + " --output " + out +
              " --set coarse.weights=" + ref("gcsn_weights.safetensors") +
              " --set fine.weights=" + ref("resunet2d_weights.safetensors") +
              " --set coarse_prep.height=32 --set coarse_prep.width=64 --set "
              "crop_resample.height=64 --set crop_resample.width=128"
              " --set refine.enabled=true --progress none");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* f :
       {"metrics/cases.csv", "metrics/summary.json", "report.html", "qc/Case1.png", "qc/Case3.png",
        "seg_Case2.nii.gz", "measurements/measurements.csv", "measurements/alignment.csv",
        "measurements/summary.json", "qc/Case2_measures.png"})
    EXPECT_TRUE(fs::exists(d / ("out/" + std::string(f)))) << f;
  auto graph_summary = nlohmann::json::parse(spineparse::read_file(out + "/metrics/summary.json"));
  EXPECT_EQ(graph_summary["cases_scored"], 3);
  EXPECT_TRUE(graph_summary.contains("refinement"));  // Dice before and after refinement

  // `spineparse evaluate` on the written segmentations gives the same numbers.
  r = sp("evaluate --pred " + out + " --truth " + cohort + " --output " + (d / "again").string());
  ASSERT_EQ(r.code, 0) << r.output;
  auto again =
      nlohmann::json::parse(spineparse::read_file((d / "again/metrics/summary.json").string()));
  for (const char* m : {"dice", "precision", "recall", "assd_mm", "hd95_mm"})
    for (const char* g : {"vertebrae", "discs", "all"}) {
      const auto& a = graph_summary[m][g]["mean"];
      const auto& b = again[m][g]["mean"];
      ASSERT_EQ(a.is_null(), b.is_null()) << m << " " << g;
      if (!a.is_null()) {
        EXPECT_NEAR(a.get<double>(), b.get<double>(), 1e-9) << m << " " << g;
      }
    }
  EXPECT_EQ(spineparse::read_file(out + "/metrics/cases.csv"),
            spineparse::read_file((d / "again/metrics/cases.csv").string()));

  // The report renders in a browser: one row per case.
  if (!fs::exists("/usr/bin/chromium"))
    GTEST_SKIP() << "chromium is not installed (scripts/setup installs it)";
  const std::string cmd =
      "timeout 120 /usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-quic "
      "--no-first-run "
      "--disable-background-networking --disable-component-update --disable-sync --user-data-dir=" +
      (d / "chromium").string() + " --dump-dom file://" + out + "/report.html";
  auto dump = [&](const std::string& suffix) {
    FILE* p = popen((cmd + suffix + " 2>/dev/null").c_str(), "r");
    std::string dom;
    std::array<char, 4096> buf;
    while (std::size_t n = fread(buf.data(), 1, buf.size(), p)) dom.append(buf.data(), n);
    pclose(p);
    return dom;
  };
  const std::string dom = dump("");
  std::size_t rows = 0;
  for (std::size_t pos = 0; (pos = dom.find("<tr class=\"case ", pos)) != std::string::npos; ++pos)
    ++rows;
  EXPECT_EQ(rows, 3u) << dom.substr(0, 2000);
  EXPECT_NE(dom.find("data:image/png;base64,"), std::string::npos);  // pictures inline
  EXPECT_NE(dom.find("L5/S"), std::string::npos);                    // the per-structure table
  // What each network ran in, and why (run.json's nodes).
  auto run = nlohmann::json::parse(spineparse::read_file(out + "/run.json"));
  const std::string fine = run["nodes"]["fine"]["precision"].get<std::string>();
  EXPECT_THAT(fine, ::testing::AnyOf("fp32", "bf16"));
  EXPECT_NE(dom.find("network fine"), std::string::npos);
  EXPECT_NE(dom.find(fine + " on cpu"), std::string::npos) << dom.substr(0, 3000);
  EXPECT_NE(dom.find(run["nodes"]["fine"]["precision_reason"].get<std::string>()),
            std::string::npos);
  // Each case's measurements, closed until opened (report.html#measures-<case> opens one): the
  // picture with the endplates drawn and the per-level table.
  EXPECT_EQ(dom.find("id=\"measures-Case1\""), std::string::npos);
  EXPECT_EQ(dom.find("<th>Hm mm</th>"), std::string::npos);
  const std::string opened = dump("#measures-Case2");
  const auto at = opened.find("id=\"measures-Case2\"");
  ASSERT_NE(at, std::string::npos) << opened.substr(0, 3000);
  const std::string details = opened.substr(at, opened.find("</table>", at) - at);
  EXPECT_THAT(details, HasSubstr("<img src=\"data:image/png;base64,"));
  EXPECT_THAT(details, HasSubstr("<th>Hm mm</th>"));
  EXPECT_THAT(details,  // a level, trusted by QC or not
              ::testing::ContainsRegex("<tr><td class=\"l( unsure)?\"><span class=\"swatch\""));
}

// spineparse measure on another tool's label maps (values 101-119, mapped with --labels-map) in
// RAS, with the images, and a file that is no volume: that case fails alone.
TEST(Cli, MeasureReadsOtherToolsLabelMapsWithTheirImagesAndMatchesTheTruth) {
  namespace io = spineparse::io;
  TempDir d;
  const std::string cohort = (d / "cohort").string(), other = (d / "other").string();
  ASSERT_EQ(sp("synth --cases 3 --size 500 560 --seed 9 --fractures 0.3 --orientation RAS --out " +
               cohort)
                .code,
            0);
  fs::create_directories(other);
  std::string map;
  for (int l = 1; l <= 19; ++l)
    map += (map.empty() ? "" : ",") + std::to_string(100 + l) + ":" + std::to_string(l);
  for (int i = 1; i <= 3; ++i) {
    auto m = io::read_labels(cohort + "/mask/mask_case" + std::to_string(i) + ".nii.gz", 19);
    auto shifted = spineparse::NdArray::make<std::uint8_t>(m.data->shape());
    for (std::int64_t k = 0; k < m.data->numel(); ++k) {
      const auto v = m.data->data<std::uint8_t>()[k];
      shifted->data<std::uint8_t>()[k] = static_cast<std::uint8_t>(v ? v + 100 : 0);
    }
    io::write_volume(other + "/Case" + std::to_string(i) + ".nii.gz", *shifted, m.geometry);
  }
  spineparse::write_file_atomic(other + "/Case4.nii.gz", "not a volume");
  const std::string out = (d / "measured").string();
  auto r = sp("measure " + other + " --image " + cohort + " --labels-map " + map + " -o " + out);
  EXPECT_EQ(r.code, 1) << r.output;  // one case failed
  EXPECT_THAT(r.output, HasSubstr("Case4"));
  EXPECT_THAT(r.output, HasSubstr("measured 3 of 4 cases"));
  const auto csv = spineparse::read_file(out + "/measurements.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 3 * 19);
  // Each complete structure's middle height within 1 mm of synth's truth; intensities present.
  std::map<std::string, double> truth;
  std::istringstream t(spineparse::read_file(cohort + "/truth_measurements.csv"));
  std::string line;
  std::getline(t, line);
  while (std::getline(t, line)) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    for (std::string x; std::getline(ls, x, ',');) f.push_back(x);
    if (f[3] == "1" && !f[5].empty()) truth[f[0] + "," + f[1]] = std::stod(f[5]);
  }
  std::istringstream m(csv);
  std::getline(m, line);
  ASSERT_THAT(line, HasSubstr("case,label,structure,complete,confidence,reliable,"
                              "anterior_height_mm,middle_height_mm"));
  const std::size_t middle = 7, intensity = 17;  // middle_height_mm, mean_intensity
  int compared = 0, with_intensity = 0;
  while (std::getline(m, line)) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    for (std::string x; std::getline(ls, x, ',');) f.push_back(x);
    auto it = truth.find(f[0] + "," + f[1]);
    with_intensity += f.size() > intensity && !f[intensity].empty();
    if (it == truth.end()) continue;
    ASSERT_FALSE(f[middle].empty()) << line;
    EXPECT_NEAR(std::stod(f[middle]), it->second, 1.0) << line;
    ++compared;
  }
  EXPECT_GT(compared, 20);
  EXPECT_GT(with_intensity, 30);
  EXPECT_TRUE(fs::exists(out + "/alignment.csv"));
  EXPECT_TRUE(fs::exists(out + "/summary.json"));
  // Values outside the map's range are refused, naming the entry.
  r = sp("measure " + other + " --labels-map 101:40 -o " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("101:40"));
}

TEST(Cli, BenchTimesNetworksWithoutWeightFilesWithRandomWeights) {
  if (!has_networks()) GTEST_SKIP() << "built without the network plugins";
  TempDir d;
  const std::string out = (d / "bench").string();
  auto r =
      sp("bench " + graph("spineparsenet.json") +
         " --cases 1 --warmup 0 --size 64 --slices 12 --network-cases 1 --no-baseline --output " +
         out + " --set coarse.weights=" + (d / "none.safetensors").string() +
         " --set fine.weights=" + (d / "none2.safetensors").string() +
         " --set coarse_prep.height=32 --set coarse_prep.width=64 --set crop_resample.height=64 "
         "--set crop_resample.width=128");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("coarse has no weights file"));
  auto b = nlohmann::json::parse(spineparse::read_file(out + "/bench.json"));
  EXPECT_EQ(b["random_weights"], nlohmann::json::array({"coarse", "fine"}));
  EXPECT_FALSE(b.contains("eager_baseline"));
  // A run (not a bench) still refuses the missing file.
  auto run =
      sp("run " + graph("spineparsenet.json") + " --input " + (out + "/cohort") + " --output " +
         (d / "run").string() + " --set coarse.weights=" + (d / "none.safetensors").string());
  EXPECT_EQ(run.code, 2) << run.output;
  EXPECT_THAT(run.output, HasSubstr("does not exist"));
}

namespace {
// A flag of /proc/cpuinfo's first "flags" line.
bool cpu_flag(const std::string& flag) {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("flags", 0) == 0)
      return (line + " ").find(" " + flag + " ") != std::string::npos;
  return false;
}
}  // namespace

namespace {
// bench of graphs/spineparsenet.json with the reference weights on small synthetic cases (72 x 72,
// networks' grids shrunk), one warm-up and one network-only case, into `out`, plus `extra`.
std::string small_reference_bench(const std::string& out, const std::string& extra) {
  return "bench " + graph("spineparsenet.json") +
         " --warmup 1 --size 72 --slices 12 --network-cases 1 --output " + out +
         " --set coarse.weights=" + ref("gcsn_weights.safetensors") +
         " --set fine.weights=" + ref("resunet2d_weights.safetensors") +
         " --set coarse_prep.height=32 --set coarse_prep.width=64 --set "
         "crop_resample.height=64 --set crop_resample.width=128 " +
         extra;
}
}  // namespace

// Network stages given one core each hold no more than a CPU stage; bench still knows them as
// networks (by the precision they record): the network-only replay and the networks' table.
TEST(Cli, BenchTimesNetworksGivenOneCore) {
  if (!has_networks()) GTEST_SKIP() << "built without the network plugins";
  if (!fs::exists(ref("manifest.json"))) GTEST_SKIP() << "no ../shared/reference";
  TempDir d;
  const std::string out = (d / "bench").string();
  auto r = sp(small_reference_bench(out,
                                    "--cases 2 --no-baseline --set coarse.cores=1 "
                                    "--set fine.cores=1"));
  ASSERT_EQ(r.code, 0) << r.output;
  auto b = nlohmann::json::parse(spineparse::read_file(out + "/bench.json"));
  EXPECT_GT(b["network_only"]["seconds_per_case"].get<double>(), 0.0);
  ASSERT_EQ(b["networks"].size(), 3u);  // coarse, fine, all networks
  for (const auto& n : b["networks"]) EXPECT_GT(n["gflops"].get<double>(), 0.0) << n.dump();
}

TEST(Cli, BenchWritesWellFormedBenchAndTraceFiles) {
  if (!has_networks()) GTEST_SKIP() << "built without the network plugins";
  if (!fs::exists(ref("manifest.json"))) GTEST_SKIP() << "no ../shared/reference";
  TempDir d;
  const std::string out = (d / "bench").string();
  auto r = sp(small_reference_bench(out, "--cases 3"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("network-only:"));
  auto b = nlohmann::json::parse(spineparse::read_file(out + "/bench.json"));
  EXPECT_EQ(b["cases"], 3);
  EXPECT_EQ(b["warmup_cases"], 1);
  EXPECT_GT(b["cases_per_s"].get<double>(), 0.0);
  const auto graph_nodes =
      nlohmann::json::parse(spineparse::read_file(graph("spineparsenet.json")))["nodes"].size();
  EXPECT_EQ(b["stages"].size(), graph_nodes);
  double net_busy = 0;
  for (const auto& s : b["stages"]) {
    EXPECT_EQ(s["cases"], 3) << s["node"];
    EXPECT_GE(s["busy_s"].get<double>(), 0.0);
    EXPECT_GE(s["waiting_s"].get<double>(), 0.0);
    EXPECT_GE(s["alone_per_case_s"].get<double>(), 0.0);
    if (s["resources"] == "all cores") {  // the networks, as they declare themselves
      net_busy += s["busy_s"].get<double>();
      EXPECT_GT(s["alone_per_case_s"].get<double>(), 0.0) << s["node"];
    } else {
      EXPECT_EQ(s["resources"], "1 core") << s["node"];
    }
  }
  EXPECT_GT(net_busy, 0.0);
  EXPECT_GT(b["resources_held"]["cores"].get<double>(), 0.0);
  EXPECT_LE(b["resources_held"]["cores"].get<double>(), 1.0 + 1e-9);
  EXPECT_GT(b["open_s"].get<double>(), 0.0);
  EXPECT_GT(b["first_case_s"].get<double>(), 0.0);
  EXPECT_THAT(r.output, HasSubstr("resources held: cores"));
  EXPECT_THAT(r.output, HasSubstr("start-up: stages opened in"));
  EXPECT_GT(b["network_only"]["seconds_per_case"].get<double>(), 0.0);
  EXPECT_GT(b["eager_baseline"]["seconds_per_case"].get<double>(), 0.0);
  EXPECT_GT(b["network_busy_share"].get<double>(), 0.0);
  EXPECT_LE(b["network_busy_share"].get<double>(), 1.0);
  EXPECT_THAT(b["eager_baseline"]["changes"].dump(), HasSubstr("fine.batch_size=1"));
  EXPECT_THAT(b["eager_baseline"]["changes"].dump(), HasSubstr("coarse.optimize=false"));
  EXPECT_GT(b["network_only_vs_eager_baseline"].get<double>(), 0.0);
  EXPECT_THAT(b["eager_baseline"]["changes"].dump(), HasSubstr("fine.precision=fp32"));
  EXPECT_EQ(b["eager_baseline"]["threads"], b["threads"]);  // every core, as users run LibTorch
  // The machine's measured peaks, and per network its precision (as this CPU's flags say auto
  // picks), its work per case and its share of the peak of that precision.
  const bool native_bf16 = cpu_flag("avx512_bf16") || cpu_flag("amx_bf16");
  const std::string expected = native_bf16 ? "bf16" : "fp32";
  ASSERT_EQ(b["peak"].size(), native_bf16 ? 2u : 1u);  // bfloat16 only where it is native
  for (const auto& p : b["peak"]) {
    EXPECT_EQ(p["device"], "cpu");
    EXPECT_GT(p["peak_gflops"].get<double>(), 1.0) << p.dump();
    EXPECT_GE(p["peak_gflops"].get<double>(), p["gemm_gflops"].get<double>());
  }
  ASSERT_EQ(b["networks"].size(), 3u);  // coarse, fine, all networks
  for (const auto& n : b["networks"]) {
    EXPECT_GT(n["gflop_per_case"].get<double>(), 0.0) << n.dump();
    EXPECT_GT(n["gflops"].get<double>(), 0.0) << n.dump();
    ASSERT_TRUE(n.contains("share_of_peak")) << n.dump();
    EXPECT_GT(n["share_of_peak"].get<double>(), 0.0);
    EXPECT_LT(n["share_of_peak"].get<double>(), 1.5);  // a probe may undershoot, not by 50 %
    if (n["node"] != "all networks") {
      EXPECT_EQ(n["precision"], expected) << n.dump();
      EXPECT_THAT(n["precision_reason"].get<std::string>(), HasSubstr("auto"));
    }
  }
  EXPECT_THAT(r.output, HasSubstr("of peak"));
  // The limit: each network's GFLOP over the peak of its precision, summed; the run, the networks
  // alone and the first run (the warm-up, start-up included) as shares of it.
  const auto& l = b["limit"];
  ASSERT_TRUE(l.contains("seconds_per_case")) << l.dump();
  double limit = 0;
  for (const auto& n : b["networks"])
    for (const auto& p : b["peak"])
      if (n["node"] != "all networks" && p["device"] == n["device"] &&
          p["precision"] == n["precision"])
        limit += n["gflop_per_case"].get<double>() / p["peak_gflops"].get<double>();
  EXPECT_NEAR(l["seconds_per_case"].get<double>(), limit, 1e-9 * limit);
  EXPECT_NEAR(l["end_to_end_share"].get<double>(), limit / b["seconds_per_case"].get<double>(),
              1e-9);
  EXPECT_NEAR(l["network_only_share"].get<double>(),
              limit / b["network_only"]["seconds_per_case"].get<double>(), 1e-9);
  EXPECT_EQ(l["first_run"]["cases"], 1);  // --warmup 1
  EXPECT_GT(l["first_run"]["share"].get<double>(), 0.0);
  EXPECT_LT(l["first_run"]["share"].get<double>(), 1.5);
  EXPECT_THAT(r.output, HasSubstr("limit (the networks' GFLOP / the measured peaks)"));
  EXPECT_THAT(r.output, HasSubstr("a first run of 1 case(s), start-up included"));
  auto run = nlohmann::json::parse(spineparse::read_file(out + "/run/run.json"));
  EXPECT_EQ(run["nodes"]["fine"]["precision"], expected);
  EXPECT_EQ(run["nodes"]["coarse"]["device"], "cpu");
  EXPECT_GT(b["peak_rss_mb"].get<double>(), 10.0);
  EXPECT_LE(b["peak_in_flight"].get<int>(), b["max_in_flight"].get<int>());
  EXPECT_FALSE(b["in_flight"].empty());
  const auto& m = b["memory"];
  EXPECT_GT(m["samples"].get<int>(), 0);
  EXPECT_GT(m["median_mb"].get<double>(), 10.0);
  EXPECT_LE(m["max_mb"].get<double>(),
            b["peak_rss_mb"].get<double>() + 1.0);  // sampled within the process peak
  EXPECT_GE(m["max_mb"].get<double>(), m["median_mb"].get<double>());
  EXPECT_GT(m["second_half_vs_first_half"].get<double>(), 0.0);
  auto t = nlohmann::json::parse(spineparse::read_file(out + "/trace.json"));
  int spans = 0, memory_counters = 0, cores_counters = 0;
  std::set<std::string> cases, holds;
  for (const auto& e : t["traceEvents"]) {
    ASSERT_TRUE(e.contains("ph") && e.contains("pid"));
    if (e["ph"] == "X") {
      ++spans;
      EXPECT_GE(e["dur"].get<double>(), 0.0);
      EXPECT_TRUE(e.contains("tid") && e.contains("ts"));
      cases.insert(e["args"]["case"].get<std::string>());
      holds.insert(e["args"]["holds"].get<std::string>());  // each call's grant
      EXPECT_GE(e["args"]["waited_ms"].get<double>(), 0.0);
    }
    if (e["ph"] == "C" && e["name"] == "cores held") {
      ++cores_counters;
      EXPECT_LE(e["args"]["cores"].get<int>(), b["threads"].get<int>());
    }
    if (e["ph"] == "C" && e["name"] == "resident memory") {
      ++memory_counters;
      EXPECT_GT(e["args"]["MB"].get<double>(), 10.0);
    }
  }
  EXPECT_EQ(memory_counters, m["samples"].get<int>());
  EXPECT_EQ(spans, 3 * static_cast<int>(graph_nodes));  // one span per case per stage
  EXPECT_EQ(cases.size(), 3u);
  EXPECT_GT(cores_counters, 0);
  EXPECT_TRUE(holds.count("1 core(s)")) << nlohmann::json(holds).dump();
}

namespace {
// read -> normalise -> write: the io plugin alone.
std::string io_graph(const TempDir& d) {
  const std::string path = (d / "io.json").string();
  spineparse::write_file_atomic(path, R"({"schema_version": 1, "max_in_flight": 3, "nodes": [
    {"id": "read", "stage": "io.read_dataset"},
    {"id": "normalise", "stage": "io.normalise"},
    {"id": "write", "stage": "io.write_nifti", "params": {"field": "image", "name": "norm_{id}.nii.gz"}}]})");
  return path;
}
// A temporary name as a run with process `pid` would make for `final_path`.
std::string temp_name_of_pid(const std::string& final_path, const std::string& pid) {
  std::string t = spineparse::temp_path_for(final_path);
  const std::string own = "-" + std::to_string(::getpid()) + "-";
  return t.replace(t.find(own), own.size(), "-" + pid + "-");
}
}  // namespace

TEST(Cli, AFullDiskFailsTheCasesBeingWrittenAndResumeVerifiesWhatIsThere) {
  TempDir d;
  const std::string cohort = (d / "cohort").string(), out = (d / "out").string();
  ASSERT_EQ(sp("synth --cases 3 --size 64 96 --seed 4 --out " + cohort).code, 0);
  const std::string graph_file = io_graph(d);
  fs::create_directories(out);
  // Left by a killed run (its process is gone) and by a live one (this test): only the first
  // may be removed.
  const std::string stale = temp_name_of_pid(out + "/norm_Case1.nii.gz", "999999");
  const std::string live = spineparse::temp_path_for(out + "/norm_Case2.nii.gz");
  spineparse::write_file_atomic(stale, "half a volume");
  spineparse::write_file_atomic(live, "being written");

  // Files may grow to 24 KiB: run.json fits, no output volume does.
  auto r = shell("bash -c 'ulimit -f 24; exec " + std::string(SPINEPARSE_CLI) + " run " +
                 graph_file + " --input " + cohort + " --output " + out + " --progress none'");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("removed 1 temporary file(s)"));
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live));
  fs::remove(live);
  auto run = nlohmann::json::parse(spineparse::read_file(out + "/run.json"));
  for (const auto& c : run["cases"]) {
    EXPECT_EQ(c["status"], "failed") << c.dump();
    EXPECT_EQ(c["error"]["node"], "write");
    EXPECT_THAT(c["error"]["message"].get<std::string>(), HasSubstr("cannot write " + out));
  }
  for (const auto& e : fs::directory_iterator(out)) {  // complete or absent, nothing in between
    EXPECT_THAT(e.path().filename().string(), ::testing::AnyOf("run.json", ".spineparse.lock"));
  }

  r = sp("run " + graph_file + " --input " + cohort + " --output " + out +
         " --resume --progress none");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("3 ok, 0 failed, 0 skipped"));
  // A damaged output is found by --resume and its case runs again; whole ones are kept.
  const std::string damaged = out + "/norm_Case2.nii.gz";
  fs::resize_file(damaged, fs::file_size(damaged) / 2);
  r = sp("run " + graph_file + " --input " + cohort + " --output " + out +
         " --resume --progress none");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output,
              HasSubstr("case Case2 runs again: " + damaged + " is not a complete output"));
  EXPECT_THAT(r.output, HasSubstr("1 ok, 0 failed, 2 skipped"));
  EXPECT_EQ(spineparse::io::volume_problem(damaged), "");
}

TEST(Cli, AReportThatCannotBeWrittenMakesTheRunExitNonZero) {
  if (!has_networks()) GTEST_SKIP() << "built without the network plugins";
  TempDir d;
  const std::string cohort = (d / "cohort").string(), out = (d / "out").string();
  ASSERT_EQ(sp("synth --cases 2 --size 64 96 --seed 5 --out " + cohort).code, 0);
  // 24 KiB: the measurement and QC records and run.json (about 17 KiB) fit, the QC pictures (over
  // 30 KiB) do not; their cases fail with the reason (no crash, no short file).
  auto r =
      shell("bash -c 'ulimit -f 24; exec " + std::string(SPINEPARSE_CLI) + " run " +
            graph("demo.json") + " --input " + cohort + " --output " + out + " --progress none'");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_THAT(r.output,
              HasSubstr("[report] cannot write " + out + "/qc/Case1.png: File too large"));
  EXPECT_FALSE(fs::exists(out + "/qc/Case1.png"));
  fs::remove_all(out);
  // 64 KiB: the segmentations and QC pictures (under 40 KiB) fit, the page embedding them does not.
  r = shell("bash -c 'ulimit -f 64; exec " + std::string(SPINEPARSE_CLI) + " run " +
            graph("demo.json") + " --input " + cohort + " --output " + out + " --progress none'");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("node 'report' failed after the run: cannot write"));
  EXPECT_FALSE(fs::exists(out + "/report.html"));
  EXPECT_TRUE(fs::exists(out + "/run.json"));
}

namespace {
// read -> a 400 ms pause (the test plugin's test.delay) -> normalise -> write, one case at a time.
// A graph that takes `ms` per case, one case at a time.
std::string slow_graph(const TempDir& d, int ms = 400) {
  const std::string path = (d / "slow.json").string();
  spineparse::write_file_atomic(path, R"({"schema_version": 1, "max_in_flight": 1, "nodes": [
    {"id": "read", "stage": "io.read_dataset"},
    {"id": "pause", "stage": "test.delay", "params": {"ms": )" +
                                          std::to_string(ms) + R"(}},
    {"id": "normalise", "stage": "io.normalise"},
    {"id": "write", "stage": "io.write_nifti", "params": {"field": "image", "name": "norm_{id}.nii.gz"}}]})");
  return path;
}
// Starts `run` in the background, waits for its first output, sends it `signals` SIGINTs and
// reports its exit status.
Result interrupt_run(const std::string& run_args, const std::string& out, int signals) {
  std::string kills;
  for (int i = 0; i < signals; ++i) kills += "kill -INT $pid; ";
  return shell("bash -c '" + std::string(SPINEPARSE_CLI) + " run " + run_args +
               " --progress none & pid=$!; while [ ! -e " + out +
               "/norm_Case1.nii.gz ]; do sleep 0.02; done; " + kills + "wait $pid; echo EXIT=$?'");
}
}  // namespace

TEST(Cli, CtrlCStopsTakingCasesRecordsTheRestAndResumeFinishes) {
  TempDir d;
  const std::string cohort = (d / "cohort").string(), out = (d / "out").string();
  ASSERT_EQ(sp("synth --cases 5 --size 48 64 --seed 6 --out " + cohort).code, 0);
  const std::string args = slow_graph(d) + " --input " + cohort + " --output " + out +
                           " --threads 1 --plugin-dir " + spineparse::testing::test_plugin_dir();
  auto r = interrupt_run(args, out, 1);
  EXPECT_THAT(r.output, HasSubstr("EXIT=130"));
  EXPECT_THAT(r.output, HasSubstr("to finish the run:"));
  EXPECT_THAT(r.output, HasSubstr("--resume"));
  auto run = nlohmann::json::parse(spineparse::read_file(out + "/run.json"));
  ASSERT_TRUE(run.contains("interrupted")) << run.dump(1);
  EXPECT_EQ(run["interrupted"]["signal"], 2);
  const int ok = run["counts"]["ok"], not_run = run["counts"]["not_run"];
  EXPECT_GE(ok, 1);
  EXPECT_GE(not_run, 1);
  EXPECT_EQ(ok + not_run, 5);
  EXPECT_EQ(run["interrupted"]["not_run"].size(), static_cast<std::size_t>(not_run));
  for (const auto& e : fs::directory_iterator(out)) {  // whole outputs only
    const std::string name = e.path().filename().string();
    EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
    if (name.rfind("norm_", 0) == 0) {
      EXPECT_EQ(spineparse::io::volume_problem(e.path()), "");
    }
  }
  r = sp("run " + args + " --resume --progress none");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr(std::to_string(not_run) + " ok, 0 failed, " + std::to_string(ok) +
                                  " skipped of 5 cases"));
}

TEST(Cli, ASecondCtrlCStopsAtOnceLeavingNoPartialOutput) {
  TempDir d;
  const std::string cohort = (d / "cohort").string(), out = (d / "out").string();
  ASSERT_EQ(sp("synth --cases 4 --size 48 64 --seed 7 --out " + cohort).code, 0);
  const std::string args = slow_graph(d) + " --input " + cohort + " --output " + out +
                           " --threads 1 --plugin-dir " + spineparse::testing::test_plugin_dir();
  auto r = interrupt_run(args, out, 2);
  EXPECT_THAT(r.output, HasSubstr("EXIT=130"));
  for (const auto& e : fs::directory_iterator(out)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("norm_", 0) == 0) {
      EXPECT_EQ(spineparse::io::volume_problem(e.path()), "");
    }
  }
  r = sp("run " + args + " --resume --progress none");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const auto& e : fs::directory_iterator(out))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

TEST(Cli, OneRunPerOutputFolderAndOutputsNeverBecomeInputs) {
  TempDir d;
  const std::string cohort = (d / "cohort").string(), out = (d / "out").string();
  ASSERT_EQ(sp("synth --cases 4 --size 48 64 --seed 8 --out " + cohort).code, 0);
  // 3 s per case: the first run still holds the folder when the second has started, even on a
  // loaded machine (starting takes seconds there).
  const std::string graph_file = slow_graph(d, 3000);
  const std::string plugins = " --plugin-dir " + spineparse::testing::test_plugin_dir();
  // A second run into a folder a run is writing is refused, naming the holder.
  auto r =
      shell("bash -c '" + std::string(SPINEPARSE_CLI) + " run " + graph_file + " --input " +
            cohort + " --output " + out + plugins + " --progress none & pid=$!; while [ ! -e " +
            out + "/norm_Case1.nii.gz ]; do sleep 0.02; done; " + SPINEPARSE_CLI + " run " +
            graph_file + " --input " + cohort + " --output " + out + plugins +
            "; echo SECOND=$?; wait $pid; echo FIRST=$?'");
  EXPECT_THAT(r.output, HasSubstr("is in use by spineparse (pid "));
  EXPECT_THAT(r.output, HasSubstr("SECOND=2"));
  EXPECT_THAT(r.output, HasSubstr("FIRST=0"));
  // An output folder that holds the input volumes is refused before any case.
  for (const std::string& o : {cohort + "/original_mr", cohort}) {
    r = sp("run " + io_graph(d) + " --input " + cohort + " --output " + o + " --progress none");
    EXPECT_EQ(r.code, 2) << o << r.output;
    EXPECT_THAT(r.output, HasSubstr("holds the input volumes")) << o;
  }
}

TEST(Cli, AResumedRunReportsTheWholeCohortAsAnUninterruptedOneDoes) {
  TempDir d;
  const std::string cohort = (d / "cohort").string(), out = (d / "out").string();
  ASSERT_EQ(sp("synth --cases 5 --size 48 64 --seed 9 --out " + cohort).code, 0);
  const std::string graph_file = (d / "scored.json").string();
  spineparse::write_file_atomic((d / "qc.json").string(), R"({
    "structure": {"bias": 2, "weights": {"order_wrong": -6}},
    "case": {"bias": -4, "weights": {"mean_confidence": 9}}})");
  spineparse::write_file_atomic(graph_file, R"({"schema_version": 1, "max_in_flight": 1, "nodes": [
    {"id": "read", "stage": "io.read_dataset"},
    {"id": "pause", "stage": "test.delay", "params": {"ms": 300}},
    {"id": "labels", "stage": "test.mask_as_labels"},
    {"id": "qc", "stage": "metrics.qc", "params": {"calibration": "qc.json"}},
    {"id": "evaluate", "stage": "metrics.evaluate"},
    {"id": "write", "stage": "io.write_nifti", "params": {"field": "image", "name": "norm_{id}.nii.gz"}}]})");
  const std::string plugins = " --threads 1 --plugin-dir " + spineparse::testing::test_plugin_dir();
  auto r = sp("run " + graph_file + " --input " + cohort + " --output " + (d / "whole").string() +
              plugins + " --progress none");
  ASSERT_EQ(r.code, 0) << r.output;
  r = interrupt_run(graph_file + " --input " + cohort + " --output " + out + plugins, out, 1);
  ASSERT_THAT(r.output, HasSubstr("EXIT=130"));
  r = sp("run " + graph_file + " --input " + cohort + " --output " + out + plugins +
         " --resume --progress none");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("skipped of 5 cases"));
  // The same per-case table and summary, case by case, as the run that was never interrupted.
  EXPECT_EQ(spineparse::read_file(out + "/metrics/cases.csv"),
            spineparse::read_file((d / "whole/metrics/cases.csv").string()));
  EXPECT_EQ(
      nlohmann::json::parse(spineparse::read_file(out + "/metrics/summary.json")),
      nlohmann::json::parse(spineparse::read_file((d / "whole/metrics/summary.json").string())));
  // run.json keeps the earlier run's record of the skipped cases.
  auto run = nlohmann::json::parse(spineparse::read_file(out + "/run.json"));
  int skipped = 0;
  for (const auto& c : run["cases"]) {
    if (c["status"] != "skipped") continue;
    ++skipped;
    EXPECT_EQ(c["attrs"].value("earlier_status", ""), "ok") << c.dump();
    EXPECT_TRUE(c.contains("metrics") && c["metrics"].contains("dice_all")) << c.dump();
    EXPECT_TRUE(c["stage_seconds"].contains("pause")) << c.dump();
    EXPECT_TRUE(c.contains("qc") && c["qc"].contains("verdict")) << c.dump();  // QC's record too
    EXPECT_FALSE(c["attrs"].contains("record:qc")) << c.dump();
  }
  EXPECT_GE(skipped, 1);
  EXPECT_EQ(spineparse::read_file(out + "/qc/review.csv"),
            spineparse::read_file((d / "whole/qc/review.csv").string()));
}

// In a case that fails QC no structure is reliable, however sure of it the networks were: its
// measurements are kept, marked reliable=0, and the note says why; in a passing case they count.
TEST(Cli, ACaseThatFailsQcHasNoReliableMeasurements) {
  TempDir d;
  const std::string cohort = (d / "cohort").string();
  ASSERT_EQ(sp("synth --cases 1 --size 320 384 --seed 4 --out " + cohort).code, 0);
  for (const char* bias : {"-20", "20"}) {  // every case fails / passes; structures all sure
    spineparse::write_file_atomic((d / "qc.json").string(),
                                  std::string(R"({"structure": {"bias": 8, "weights": {"cut": -1}},
                                      "case": {"bias": )") + bias + R"(, "weights": {"missing": -1}}})");
    const std::string graph_file = (d / "g.json").string(), out = (d / bias).string();
    spineparse::write_file_atomic(graph_file, R"({"schema_version": 1, "nodes": [
      {"id": "read", "stage": "io.read_dataset"},
      {"id": "labels", "stage": "test.mask_as_labels"},
      {"id": "qc", "stage": "metrics.qc", "params": {"calibration": "qc.json"}},
      {"id": "measure", "stage": "metrics.measure"}]})");
    const auto r = sp("run " + graph_file + " --input " + cohort + " --output " + out +
                      " --plugin-dir " + spineparse::testing::test_plugin_dir() + " --progress none");
    ASSERT_EQ(r.code, 0) << r.output;
    const bool fails = std::string(bias) == "-20";
    EXPECT_THAT(r.output, HasSubstr(fails ? "qc: 0 pass, 0 review, 1 fail" : "qc: 1 pass"));
    std::istringstream csv(spineparse::read_file(out + "/measurements/measurements.csv"));
    int rows = 0;
    for (std::string line; std::getline(csv, line);) {
      if (line.rfind("Case1,", 0) != 0 || line.find(",absent") != std::string::npos) continue;
      ++rows;
      EXPECT_THAT(line, HasSubstr(fails ? ",0," : ",1,")) << line;  // confidence 1.000 either way
      if (fails) EXPECT_THAT(line, HasSubstr("unreliable: the case failed QC")) << line;
      else EXPECT_THAT(line, ::testing::Not(HasSubstr("unreliable"))) << line;
    }
    EXPECT_GE(rows, 10);
  }
}

// A thin-slice (1 mm) acquisition lies outside the demo models' training range (about 4 mm
// slices): each case carries a warning naming the property, its value and the range; with
// resample=auto (the default) the slice axis is resampled to the model's spacing and the labels
// come back on the input's own grid, and the result is good and no worse than with resample=off
// (the demo models, trained with field-of-view augmentation, do nearly as well without it).
TEST(Cli, AThinSliceScanIsFlaggedAndResampledToTheModelsSpacing) {
  namespace io = spineparse::io;
  if (!has_networks()) GTEST_SKIP() << "built without the network plugins";
  TempDir d;
  const std::string in = (d / "thin").string();
  ASSERT_EQ(sp("synth --cases 3 --seed 11 --size 128 160 --slice-spacing 1 --out " + in).code, 0);
  const auto info =
      sp("model-info " + spineparse::testing::source_dir() + "/models/demo_gcsn.safetensors");
  ASSERT_EQ(info.code, 0) << info.output;
  EXPECT_THAT(info.output, HasSubstr("slice_spacing_mm"));
  std::map<std::string, double> dice;
  for (const std::string mode : {"off", "auto"}) {
    const std::string out = (d / mode).string();
    const auto r = sp("run " + graph("demo.json") + " --input " + in + " --output " + out +
                      " --progress none --set reorient.resample=" + mode);
    ASSERT_EQ(r.code, 0) << mode << r.output;
    const auto j = nlohmann::json::parse(spineparse::read_file(out + "/run.json"));
    for (const auto& c : j["cases"]) {
      ASSERT_TRUE(c.contains("warnings")) << c.dump();
      std::string w;  // these small test volumes are outside the in-plane range too
      for (const auto& line : c["warnings"]) w += line.get<std::string>() + "\n";
      EXPECT_THAT(w, HasSubstr("slice_spacing_mm 1 is outside the model's training range"));
      EXPECT_THAT(
          w, HasSubstr(mode == "auto" ? "slice axis resampled (resample=auto)" : "resample=off"));
      const std::string id = c["id"];
      const auto image = io::read_image(in + "/original_mr/" + id + ".nii.gz");
      const auto labels = io::read_labels(out + "/seg_" + id + ".nii.gz", 19);
      EXPECT_EQ(labels.data->shape(), image.data->shape()) << mode << " " << id;
      EXPECT_TRUE(labels.geometry.same_as(image.geometry, 1e-6)) << mode << " " << id;
    }
    EXPECT_THAT(spineparse::read_file(out + "/report.html"), HasSubstr("outside the model"));
    const auto summary =
        nlohmann::json::parse(spineparse::read_file(out + "/metrics/summary.json"));
    dice[mode] = summary["dice"]["all"]["mean"];
  }
  EXPECT_GT(dice["auto"], 0.85) << "auto " << dice["auto"] << ", off " << dice["off"];
  EXPECT_GT(dice["auto"], dice["off"] - 0.02) << "auto " << dice["auto"] << ", off " << dice["off"];
}

namespace {
// A CSV's rows keyed by their first field (the case), as the header's columns -> values.
std::map<std::string, std::map<std::string, std::string>> csv_by_case(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  std::vector<std::string> header;
  std::map<std::string, std::map<std::string, std::string>> out;
  for (bool first = true; std::getline(in, line); first = false) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    for (std::string x; std::getline(ls, x, ',');) f.push_back(x);
    if (first) header = f;
    else
      for (std::size_t i = 0; i < f.size() && i < header.size(); ++i) out[f[0]][header[i]] = f[i];
  }
  return out;
}
}  // namespace

// Phantoms with a real lumbosacral junction (synth --seated-sacrum, seed 2026): the demo models
// find the sacrum of both cases (before their third training stage, Case2's was lost and every
// level named one off) and the L1-S1 lordosis and sacral slope come within 5 deg of the truth.
TEST(Cli, TheDemoGraphFindsTheSacrumOfARealLumbosacralJunction) {
  if (!has_networks()) GTEST_SKIP() << "built without the network plugins";
  TempDir d;
  const std::string in = (d / "seated").string(), out = (d / "out").string();
  ASSERT_EQ(sp("synth --cases 2 --seed 2026 --seated-sacrum --out " + in).code, 0);
  const auto r = sp("run " + graph("demo.json") + " --input " + in + " --output " + out +
                    " --progress none");
  ASSERT_EQ(r.code, 0) << r.output;
  std::istringstream cases(spineparse::read_file(out + "/metrics/cases.csv"));
  int sacra = 0;
  for (std::string line; std::getline(cases, line);) {
    if (line.find(",1,S,") == std::string::npos) continue;
    const double dice = std::stod(line.substr(line.find(",1,S,") + 5));
    EXPECT_GT(dice, 0.8) << line;
    ++sacra;
  }
  EXPECT_EQ(sacra, 2);
  const auto truth = csv_by_case(spineparse::read_file(in + "/truth_alignment.csv"));
  const auto got = csv_by_case(spineparse::read_file(out + "/measurements/alignment.csv"));
  for (const std::string id : {"Case1", "Case2"})
    for (const std::string col : {"lordosis_l1_s1_deg", "sacral_slope_deg"}) {
      ASSERT_FALSE(got.at(id).at(col).empty()) << id << " " << col;
      EXPECT_NEAR(std::stod(got.at(id).at(col)), std::stod(truth.at(id).at(col)), 5.0)
          << id << " " << col;
    }
}

// model-info --training-data measures a cohort in the model's orientation: the same spines
// stored as PIL or RAS give the same range, recorded in the weights (tensors unchanged).
TEST(Cli, ModelInfoMeasuresTheTrainingRangeInTheModelsOrientation) {
  namespace io = spineparse::io;
  TempDir d;
  std::map<std::string, std::string> ranges;
  for (const std::string o : {"PIL", "RAS"}) {
    const std::string cohort = (d / o).string(), w = (d / (o + ".safetensors")).string();
    ASSERT_EQ(
        sp("synth --cases 3 --seed 4 --size 96 128 --orientation " + o + " --out " + cohort).code,
        0);
    fs::copy_file(spineparse::testing::source_dir() + "/models/demo_gcsn.safetensors", w);
    const auto r = sp("model-info " + w + " --training-data " + cohort);
    ASSERT_EQ(r.code, 0) << r.output;
    const auto range =
        io::TrainingRange::from_json(io::safetensors_metadata(w).at(io::kTrainingRangeKey), w);
    EXPECT_EQ(range.cases, 3);
    const auto& slices = range.properties.at("slices");
    EXPECT_GE(slices.p5, 12.0) << o;  // synth's 12-15 slices, along the model's slice axis
    EXPECT_LE(slices.p95, 15.0) << o;
    EXPECT_GE(range.properties.at("slice_spacing_mm").p5, 3.6) << o;
    std::string row;
    for (const auto& [name, p] : range.properties)
      row += name + " " + std::to_string(p.p5) + " " + std::to_string(p.median) + " " +
             std::to_string(p.p95) + "\n";
    ranges[o] = row;
  }
  EXPECT_EQ(ranges["PIL"], ranges["RAS"]);
}

// A real scan (tests/data/sct_t2: a 1 mm isotropic 3D T2 of the cervical spine, PSR, written by
// nibabel) is read with the geometry nibabel gives it, runs, and says how far it lies outside the
// demo models' training range; its labels come back on its own grid.
TEST(Cli, ARealThinSliceScanRunsWithWarningsOnItsOwnGrid) {
  namespace io = spineparse::io;
  const std::string scan = spineparse::testing::source_dir() + "/tests/data/sct_t2/t2.nii.gz";
  const auto image = io::read_image(scan);
  EXPECT_EQ(image.data->shape(), (std::vector<std::int64_t>{52, 60, 55}));  // [D,H,W] of 60x55x52
  EXPECT_EQ(io::axis_codes(image.geometry), "PSR");
  if (!has_networks()) GTEST_SKIP() << "built without the network plugins";
  TempDir d;
  const std::string out = (d / "out").string();
  const auto r = sp("run " + graph("demo.json") + " --input " + scan + " --output " + out +
                    " --progress none");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("warnings: 1 of 1 cases"));
  const auto j = nlohmann::json::parse(spineparse::read_file(out + "/run.json"));
  const auto& c = j["cases"][0];
  EXPECT_EQ(c["status"], "ok");
  std::string w;
  for (const auto& line : c["warnings"]) w += line.get<std::string>() + "\n";
  EXPECT_THAT(w, HasSubstr("slice_spacing_mm 1 is outside the model's training range"));
  EXPECT_THAT(w, HasSubstr("52 slices 1.00 mm apart -> 13 slices 4.00 mm apart"));
  EXPECT_THAT(w, HasSubstr("fov_h_mm 60 is outside"));
  EXPECT_THAT(w, HasSubstr("fov_w_mm 55 is outside"));
  EXPECT_THAT(w, HasSubstr("inplane_spacing_mm 1 is outside"));
  EXPECT_EQ(c["attrs"]["orientation"], "PSR");
  // Far outside the training range: never a confident pass.
  EXPECT_NE(c["qc"]["verdict"], "pass") << c["qc"].dump();
  EXPECT_THAT(c["qc"]["reasons"].dump(), HasSubstr("out_of_range: slice_spacing_mm 1"));
  EXPECT_THAT(r.output, HasSubstr("qc: 0 pass"));
  const auto labels = io::read_labels(out + "/seg_t2.nii.gz", 19);
  EXPECT_EQ(labels.data->shape(), image.data->shape());
  EXPECT_TRUE(labels.geometry.same_as(image.geometry, 1e-6));
}

// Quality control ranks a degraded case (a T1-like scan: intensities inverted) below clean ones
// and does not pass it; review.csv lists the cohort worst first and the run prints the counts.
TEST(Cli, QualityControlRanksADegradedCaseBelowCleanOnes) {
  namespace io = spineparse::io;
  if (!has_networks()) GTEST_SKIP() << "built without the network plugins";
  TempDir d;
  const std::string cohort = (d / "cohort").string(), out = (d / "out").string();
  ASSERT_EQ(sp("synth --cases 3 --seed 2026 --out " + cohort).code, 0);
  const auto v = io::read_image(cohort + "/original_mr/Case1.nii.gz");
  auto inverted = spineparse::NdArray::make<std::int16_t>(v.data->shape());
  float top = 0;
  for (std::int64_t i = 0; i < v.data->numel(); ++i) top = std::max(top, v.data->data<float>()[i]);
  for (std::int64_t i = 0; i < v.data->numel(); ++i)
    inverted->data<std::int16_t>()[i] = static_cast<std::int16_t>(top - v.data->data<float>()[i]);
  io::write_volume(cohort + "/original_mr/Case9.nii.gz", *inverted, v.geometry);
  fs::copy_file(cohort + "/mask/mask_case1.nii.gz", cohort + "/mask/mask_case9.nii.gz");
  const auto r = sp("run " + graph("demo.json") + " --input " + cohort + " --output " + out +
                    " --progress none");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("qc: "));
  EXPECT_THAT(r.output, HasSubstr("worst first: " + out + "/qc/review.csv"));
  std::istringstream review(spineparse::read_file(out + "/qc/review.csv"));
  std::string header, first;
  std::getline(review, header);
  std::getline(review, first);
  EXPECT_EQ(header, "case,qc,qc_score,reasons,worst_structure,worst_confidence");
  EXPECT_EQ(first.substr(0, 6), "Case9,") << spineparse::read_file(out + "/qc/review.csv");
  EXPECT_EQ(first.find(",pass,"), std::string::npos) << first;
  const auto j = nlohmann::json::parse(spineparse::read_file(out + "/run.json"));
  for (const auto& c : j["cases"]) {
    ASSERT_TRUE(c.contains("qc")) << c["id"];
    for (const char* k : {"verdict", "score", "reasons", "confidence"})
      EXPECT_TRUE(c["qc"].contains(k)) << c["id"] << " " << k;
  }
  // The confidence columns, and unreliable structures marked as such.
  const std::string csv = spineparse::read_file(out + "/measurements/measurements.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')).find("case,label,structure,complete,confidence,reliable"), 0u);
  EXPECT_THAT(csv, HasSubstr("unreliable: QC confidence"));
  EXPECT_THAT(spineparse::read_file(out + "/metrics/statistics.csv"), HasSubstr(",confidence\n"));
}

// A cohort stored in other orientations gives the same labels, on each input's own grid; an axial
// series is a clear per-case error.
TEST(Cli, ScansInAnyOrientationGiveTheSameLabelsOnTheirOwnGrid) {
  namespace io = spineparse::io;
  if (!has_networks()) GTEST_SKIP() << "built without the network plugins";
  TempDir d;
  const std::vector<std::string> orientations = {"PIL", "RAS", "LPS", "IPL"};
  for (const auto& o : orientations) {
    const std::string in = (d / ("in" + o)).string(), out = (d / ("out" + o)).string();
    ASSERT_EQ(sp("synth --cases 2 --seed 5 --size 96 128 --orientation " + o + " --out " + in).code,
              0);
    const auto r = sp("run " + graph("demo.json") + " --input " + in + " --output " + out +
                      " --progress none");
    ASSERT_EQ(r.code, 0) << o << r.output;
    const auto j = nlohmann::json::parse(spineparse::read_file(out + "/run.json"));
    EXPECT_EQ(j["cases"][0]["attrs"]["orientation"], o);
    EXPECT_THAT(j["cases"][0]["attrs"]["orientation_action"].get<std::string>(),
                HasSubstr(o == "PIL" ? "none: stored as PIL" : "reoriented " + o + " -> PIL"));
  }
  for (int c = 1; c <= 2; ++c) {
    const std::string id = "Case" + std::to_string(c);
    const auto pil = io::read_labels((d / ("outPIL/seg_" + id + ".nii.gz")).string(), 19);
    for (const auto& o : orientations) {
      const auto in = io::read_image((d / ("in" + o + "/original_mr/" + id + ".nii.gz")).string());
      const auto got = io::read_labels((d / ("out" + o + "/seg_" + id + ".nii.gz")).string(), 19);
      EXPECT_TRUE(got.geometry.same_as(in.geometry, 1e-6)) << o;  // the input's own grid
      ASSERT_EQ(got.data->shape(), in.data->shape()) << o;
      const auto back = io::reorient(*got.data, io::plan_reorientation(o, "PIL"));
      ASSERT_EQ(back->shape(), pil.data->shape()) << o;
      std::int64_t same = 0;
      for (std::int64_t i = 0; i < back->numel(); ++i)
        same += back->data<std::uint8_t>()[i] == pil.data->data<std::uint8_t>()[i];
      EXPECT_GE(static_cast<double>(same) / back->numel(), 0.999) << o << " " << id;
    }
  }
  // Statistics are the same in every orientation: voxel counts exactly, centroids in patient
  // coordinates to the headers' float32 precision.
  auto rows = [&](const std::string& o) {
    std::vector<std::vector<std::string>> out;
    std::istringstream in(
        spineparse::read_file((d / ("out" + o + "/metrics/statistics.csv")).string()));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::vector<std::string> f;
      std::istringstream cells(line);
      for (std::string c; std::getline(cells, c, ',');) f.push_back(c);
      out.push_back(f);
    }
    return out;
  };
  const auto want = rows("PIL");
  ASSERT_EQ(want.size(), 2u * 19u);
  for (const auto& o : orientations) {
    const auto got = rows(o);
    ASSERT_EQ(got.size(), want.size()) << o;
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i][3], want[i][3]) << o << " row " << i;  // voxels
      for (int c = 7; c < 10 && !want[i][c].empty(); ++c)
        EXPECT_NEAR(std::stod(got[i][c]), std::stod(want[i][c]), 0.01) << o << " row " << i;
    }
  }
  // The same voxels with a header that stacks the 4 mm slices along S-I: an axial series.
  const auto v = io::read_image((d / "inPIL/original_mr/Case1.nii.gz").string());
  spineparse::Geometry axial = v.geometry;
  axial.direction = {0, 1, 0, 1, 0, 0, 0, 0, -1};  // i P, j L, k I
  axial.spacing = {0.7, 0.7, 4.0};                 // thin rows and columns, thick slices
  fs::create_directories(d / "axial/original_mr");
  io::write_volume((d / "axial/original_mr/Case1.nii.gz").string(), *v.data, axial);
  const auto r = sp("run " + graph("demo.json") + " --input " + (d / "axial").string() +
                    " --output " + (d / "outaxial").string() + " --progress none");
  EXPECT_EQ(r.code, 1) << spineparse::read_file((d / "outaxial/run.json").string());
  EXPECT_THAT(r.output, HasSubstr("is an axial series"));
  EXPECT_THAT(r.output, HasSubstr("but the model segments sagittal slices"));
}

TEST(Cli, OneVolumeAsInputDeviceForEveryNetworkNodeAndQuiet) {
  TempDir d;
  ASSERT_EQ(sp("synth --cases 2 --size 48 64 --seed 3 --out " + (d / "c").string()).code, 0);
  const std::string file = (d / "c/original_mr/Case2.nii.gz").string();
  auto r = sp("run " + graph("default.json") + " --input " + file + " --output " +
              (d / "one").string() + " --quiet");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("1 ok, 0 failed, 0 skipped of 1 cases"));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("[progress]")));
  EXPECT_TRUE(fs::exists(d / "one/norm_Case2.nii.gz"));
  r = sp("run " + graph("default.json") + " --input " + (d / "c/cohort.json").string() +
         " --output " + (d / "x").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("is a file but not a volume"));
  if (!has_networks()) return;
  r = sp("run " + graph("demo.json") + " --input " + file + " --output " + (d / "dev").string() +
         " --device cpu --set fine.device=auto --progress none");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto j = nlohmann::json::parse(spineparse::read_file((d / "dev/run.json").string()));
  for (const auto& n : j["graph"]["nodes"]) {
    if (n["id"] == "coarse") {
      EXPECT_EQ(n["params"]["device"], "cpu");
    }
    if (n["id"] == "fine") {
      EXPECT_EQ(n["params"]["device"], "auto");  // an explicit --set wins
    }
  }
}

// A DICOM study folder: each sagittal series is a case whose labels equal those of the same
// volume given as NIfTI, on the series' own grid; the series filter picks series by description.
TEST(Cli, DicomSeriesGiveTheLabelsOfTheSameVolumesAsNifti) {
  namespace io = spineparse::io;
  if (!has_networks()) GTEST_SKIP() << "built without the network plugins";
  TempDir d;
  const std::vector<std::string> orientations = {"PIL", "IPL", "ASR"};
  int number = 1;
  for (const auto& o : orientations) {
    const std::string nii = (d / ("nii" + o)).string();
    ASSERT_EQ(
        sp("synth --cases 1 --seed 8 --size 96 128 --no-masks --orientation " + o + " --out " + nii)
            .code,
        0);
    const auto v = io::read_image(nii + "/original_mr/Case1.nii.gz");
    spineparse::testing::write_dicom_series(
        *v.data, v.geometry,
        {(d / "study/series" / o).string(), "1.2.826.0.1.3680043.8.498.7." + std::to_string(number),
         "1.2.826.0.1.3680043.8.498.7", number, "sag T2 " + o});
    if (o == "PIL")  // the same volume as one Enhanced MR object, a case of its own
      spineparse::testing::write_enhanced_mr(*v.data, v.geometry,
                                             {(d / "study/enhanced/obj.dcm").string()});
    ++number;
  }
  // (These small cases lie outside the demo models' training range, and a case that fails QC has
  // nothing reliable for the SR to hold: QC here does not fail them.)
  auto r = sp("run " + graph("demo.json") + " --input " + (d / "study").string() + " --output " +
              (d / "out").string() + " --set qc.fail_below=0 --progress none");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const std::string o : {"PIL", "IPL", "ASR", "enhanced"}) {
    const std::string from = o == "enhanced" ? "PIL" : o;  // the object holds PIL's volume
    const std::string nii = (d / ("nii" + from)).string();
    if (o != "enhanced") {
      ASSERT_EQ(sp("run " + graph("demo.json") + " --input " + nii + " --output " + nii +
                   "/out --progress none")
                    .code,
                0);
    }
    const auto want = io::read_labels(nii + "/out/seg_Case1.nii.gz", 19);
    const auto got = io::read_labels((d / ("out/seg_" + o + ".nii.gz")).string(), 19);
    // The series' grid may run its slices the other way (DICOM orders them along the normal).
    const auto r2 = io::plan_reorientation(io::axis_codes(got.geometry), from);
    const auto back = io::reorient(*got.data, r2);
    ASSERT_EQ(back->shape(), want.data->shape()) << o;
    std::int64_t same = 0;
    for (std::int64_t i = 0; i < back->numel(); ++i)
      same += back->data<std::uint8_t>()[i] == want.data->data<std::uint8_t>()[i];
    EXPECT_GE(static_cast<double>(same) / back->numel(), 0.999) << o;
  }
  // Each DICOM case also has its DICOM-SEG, which DCMTK reads back (its content is checked in
  // test_dicom); the NIfTI runs have none.
  for (const std::string o : {"PIL", "IPL", "ASR", "enhanced"}) {
    DcmSegmentation* seg = nullptr;
    ASSERT_TRUE(DcmSegmentation::loadFile((d / ("out/seg_" + o + ".dcm")).c_str(), seg).good())
        << o;
    EXPECT_GE(seg->getNumberOfSegments(), 10u) << o;
    delete seg;
    EXPECT_FALSE(fs::exists(d / ("nii" + o + "/out/seg_Case1.dcm")));
    // ... and its measurements as a DICOM SR with the values of measurements.csv (test_measure_sr
    // checks its references).
    expect_sr_heights_as_in_csv((d / ("out/sr_" + o + ".dcm")).string(),
                                (d / "out/measurements/measurements.csv").string(), o);
    EXPECT_FALSE(fs::exists(d / ("nii" + o + "/out/sr_Case1.dcm")));
  }
  // One series' folder as --input: one case, named after the folder.
  r = sp("run " + graph("demo.json") + " --input " + (d / "study/series/IPL").string() +
         " --output " + (d / "one").string() + " --progress none");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("1 ok, 0 failed, 0 skipped of 1 cases"));
  EXPECT_TRUE(fs::exists(d / "one/seg_IPL.dcm"));
  // Only the series whose description matches: the others are listed as skipped, with why.
  r = sp("run " + graph("demo.json") + " --input " + (d / "study").string() + " --output " +
         (d / "filtered").string() + " --set 'read.series=t2 ipl' --progress none");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("1 ok, 0 failed, 3 skipped of 4 cases"));
  const auto j = nlohmann::json::parse(spineparse::read_file((d / "filtered/run.json").string()));
  EXPECT_THAT(j["cases"][0]["attrs"]["skipped"].get<std::string>(),
              HasSubstr("does not match the series filter"));
}
