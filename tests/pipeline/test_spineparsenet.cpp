// SpineParseNet end to end against the original code's vectors (../shared/reference), within the
// tolerances of its README, and the shapes the original could not handle.
#include <gmock/gmock.h>
#include <torch/script.h>

#include <cmath>
#include <filesystem>

#include "coarse_stages.hpp"
#include "fine_stages.hpp"
#include "harness.hpp"
#include "io/synth.hpp"
#include "io/volume_io.hpp"
#include "io_stages.hpp"
#include "metrics_stages.hpp"
#include "nn/precision.hpp"
#include "nn/resample.hpp"
#include "nn/safetensors.hpp"
#include "reference_case.hpp"
#include "refine_stages.hpp"
#include "spineparse/executor.hpp"
#include "spineparse/files.hpp"
#include "test_util.hpp"

using namespace spineparse;
namespace fs = std::filesystem;
using spineparse::testing::TempDir;

namespace {
using spineparse::testing::diff;
using spineparse::testing::Diff;
using spineparse::testing::ref;

class SpineParseNet : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(ref("manifest.json"))) GTEST_SKIP() << "no ../shared/reference";
    spineparse::testing::set_up_reference_case(registry_, in_.str());
    e2e_ = nn::load_safetensors(ref("end_to_end.safetensors")).tensors;
  }
  std::vector<std::string> weights() const {
    return {"coarse.weights=" + ref("gcsn_weights.safetensors"),
            "fine.weights=" + ref("resunet2d_weights.safetensors")};
  }
  Registry registry_;
  TempDir in_, out_;
  std::map<std::string, torch::Tensor> e2e_;
};

std::string graph_file() {
  return spineparse::testing::source_dir() + "/graphs/spineparsenet.json";
}
}  // namespace

TEST_F(SpineParseNet, PreprocessingMatchesTheOriginal) {
  auto v = io::read_image((in_ / "original_mr/Case1.nii.gz").string());
  // As io.normalise does: (x - 466) / 379 in float32.
  auto norm = NdArray::make<float>(v.data->shape());
  for (std::int64_t i = 0; i < norm->numel(); ++i)
    norm->data<float>()[i] = (v.data->data<float>()[i] - 466.0f) / 379.0f;
  auto ci = nn::make_coarse_input(*norm, 466.0, 379.0, 128, 256, 18);
  ASSERT_EQ(ci.input->shape(), (std::vector<std::int64_t>{1, 1, 18, 128, 256}));
  EXPECT_EQ(ci.pad_before, 3);
  const auto& want = e2e_.at("coarse_input");
  Diff d = diff(ci.input->data<float>(), want.data_ptr<float>(), want.numel());
  EXPECT_LE(d.mean, 1e-4);
  EXPECT_LE(d.max, 1e-2);
  auto fm = nn::make_fine_mr(*norm, 466.0, 379.0, 256, 512);
  const auto& want_f = e2e_.at("fine_mr");
  ASSERT_EQ(fm->shape(), want_f.sizes().vec());
  d = diff(fm->data<float>(), want_f.data_ptr<float>(), want_f.numel());
  EXPECT_LE(d.mean, 1e-4);
  EXPECT_LE(d.max, 1e-2);
  std::printf("coarse_input/fine_mr vs original: mean %.2g, max %.2g\n", d.mean, d.max);
}

TEST_F(SpineParseNet, WholeGraphMatchesProbabilitiesAndLabels) {
  auto sets = weights();
  sets.push_back("to_raw.keep_probabilities=true");
  sets.push_back("coarse.device=cpu");
  sets.push_back("fine.device=cpu");
  sets.push_back("coarse.precision=fp32");  // the path that matches the original to 1e-3
  sets.push_back("fine.precision=fp32");
  auto cases = spineparse::testing::run_chain(registry_, graph_file(), in_.str(), sets, out_.str());
  ASSERT_EQ(cases.size(), 1u);
  ASSERT_FALSE(cases[0]->failed()) << cases[0]->error()->message;
  auto probs = cases[0]->get("probabilities");
  const auto& want = e2e_.at("probabilities");
  ASSERT_EQ(probs->shape(), want.sizes().vec());
  Diff d = diff(probs->data<float>(), want.data_ptr<float>(), want.numel());
  EXPECT_LE(d.max, 1e-3);
  auto labels = cases[0]->get("labels");
  const auto& want_l = e2e_.at("labels");
  ASSERT_EQ(labels->shape(), want_l.sizes().vec());
  std::int64_t same = 0;
  for (std::int64_t i = 0; i < labels->numel(); ++i)
    same += labels->data<std::uint8_t>()[i] == want_l.data_ptr<std::uint8_t>()[i];
  EXPECT_GE(static_cast<double>(same) / labels->numel(), 0.999);
  // The written file equals the original's seg_expected.nii.gz and keeps the raw geometry.
  auto written = io::read_labels((out_ / "seg_Case1.nii.gz").string(), 19);
  auto expected = io::read_labels(ref("seg_expected.nii.gz"), 19);
  ASSERT_EQ(written.data->shape(), expected.data->shape());
  same = 0;
  for (std::int64_t i = 0; i < expected.data->numel(); ++i)
    same += written.data->data<std::uint8_t>()[i] == expected.data->data<std::uint8_t>()[i];
  EXPECT_GE(static_cast<double>(same) / expected.data->numel(), 0.999);
  EXPECT_TRUE(written.geometry.same_as(expected.geometry, 1e-5));
}

TEST_F(SpineParseNet, OddSizesGiveOutputsOnTheRawGrid) {
  // H not divisible by 4 and 12 to 20 slices (the original breaks on both); smaller network
  // grids keep this quick, the networks being fully convolutional.
  TempDir in2;
  fs::create_directories(in2 / "original_mr");
  struct Size {
    std::int64_t h, w, d;
  };
  const std::vector<Size> sizes = {{66, 70, 12}, {67, 64, 19}, {65, 72, 20}, {64, 64, 18}};
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    auto a = NdArray::make<std::int16_t>({sizes[i].d, sizes[i].h, sizes[i].w});
    for (std::int64_t k = 0; k < a->numel(); ++k)
      a->data<std::int16_t>()[k] = static_cast<std::int16_t>((k * 37) % 900);
    io::write_volume((in2 / ("original_mr/Case" + std::to_string(i + 1) + ".nii.gz")).string(), *a,
                     Geometry{});
  }
  auto sets = weights();
  for (const char* s : {"coarse_prep.height=32", "coarse_prep.width=64", "crop_resample.height=64",
                        "crop_resample.width=128", "coarse.device=cpu", "fine.device=cpu"})
    sets.push_back(s);
  auto cases = spineparse::testing::run_chain(registry_, graph_file(), in2.str(), sets, out_.str());
  ASSERT_EQ(cases.size(), sizes.size());
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    ASSERT_FALSE(cases[i]->failed()) << cases[i]->error()->message;
    auto l = cases[i]->get("labels");
    EXPECT_EQ(l->shape(), (std::vector<std::int64_t>{sizes[i].d, sizes[i].h, sizes[i].w}));
    // Rows outside the central crop are background.
    const std::int64_t H = sizes[i].h, W = sizes[i].w;
    for (std::int64_t d = 0; d < sizes[i].d; ++d)
      for (std::int64_t x = 0; x < W; ++x) {
        ASSERT_EQ(l->data<std::uint8_t>()[(d * H + 0) * W + x], 0);
        ASSERT_EQ(l->data<std::uint8_t>()[(d * H + H - 1) * W + x], 0);
      }
    auto written =
        io::read_labels((out_ / ("seg_Case" + std::to_string(i + 1) + ".nii.gz")).string(), 19);
    EXPECT_EQ(written.data->shape(), l->shape());
  }
}

TEST_F(SpineParseNet, CasesSideBySideGetTheLabelsOfOneAtATime) {
  // The network stages run several cases at once on the CPU, each call with the thread share of
  // the moment (1 or 2 threads here): the executor's labels must be those of the harness, which
  // runs one case at a time with 2 threads.
  TempDir in2;
  fs::create_directories(in2 / "original_mr");
  auto raw = io::read_image(ref("raw.nii.gz"));
  const std::int64_t D = raw.data->dim(0), H = raw.data->dim(1), W = raw.data->dim(2);
  for (int i = 0; i < 4; ++i) {  // the reference scan, shifted so that the cases differ
    auto a = NdArray::make<float>({D, H, W});
    for (std::int64_t d = 0; d < D; ++d)
      for (std::int64_t h = 0; h < H; ++h)
        for (std::int64_t w = 0; w < W; ++w)
          a->data<float>()[(d * H + h) * W + w] =
              raw.data->data<float>()[(d * H + h) * W + (w + 3 * i) % W];
    io::write_volume((in2 / ("original_mr/Case" + std::to_string(i + 1) + ".nii.gz")).string(), *a,
                     raw.geometry);
  }
  auto sets = weights();
  for (const char* s : {"coarse_prep.height=32", "coarse_prep.width=64", "crop_resample.height=64",
                        "crop_resample.width=128", "coarse.device=cpu", "fine.device=cpu"})
    sets.push_back(s);
  auto one_at_a_time =
      spineparse::testing::run_chain(registry_, graph_file(), in2.str(), sets, out_.str());
  ASSERT_EQ(one_at_a_time.size(), 4u);
  // As the CPU runs them (cases side by side, one call each), then with the slices of concurrent
  // cases sharing passes (the CUDA default, forced here on the CPU).
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{},
        std::vector<std::string>{"fine.batch_across_cases=on", "fine.batch_size=16",
                                 "fine.batch_wait_ms=50"}}) {
    auto all = sets;
    all.insert(all.end(), extra.begin(), extra.end());
    auto g = load_graph_file(graph_file(), registry_, all);
    ASSERT_TRUE(g.ok());
    TempDir out2;
    RunOptions o;
    o.input_dir = in2.str();
    o.output_dir = out2.str();
    o.progress = "none";
    o.threads = 2;
    auto r = run_graph(*g.graph, registry_, o);
    ASSERT_EQ(r.ok, 4);
    int overlaps = 0, shared = 0;  // reported only: they depend on scheduling
    for (const auto& a : r.spans)
      for (const auto& b : r.spans)
        if ((a.node == "coarse" || a.node == "fine") && (b.node == "coarse" || b.node == "fine") &&
            a.case_index < b.case_index && a.start_s < b.end_s && b.start_s < a.end_s)
          ++overlaps;
    for (const auto& c : r.cases)
      if (c.attrs.count("fine_shared_passes"))
        shared += std::stoi(c.attrs.at("fine_shared_passes"));
    std::printf("%s: network calls of different cases overlapping: %d, shared fine passes: %d\n",
                extra.empty() ? "side by side" : "shared passes", overlaps, shared);
    for (int i = 0; i < 4; ++i) {
      auto want = one_at_a_time[i]->get("labels");
      auto got =
          io::read_labels((out2 / ("seg_Case" + std::to_string(i + 1) + ".nii.gz")).string(), 19);
      ASSERT_EQ(got.data->shape(), want->shape());
      std::int64_t same = 0, fg = 0;
      for (std::int64_t k = 0; k < want->numel(); ++k) {
        same += got.data->data<std::uint8_t>()[k] == want->data<std::uint8_t>()[k];
        fg += want->data<std::uint8_t>()[k] != 0;
      }
      EXPECT_GT(fg, 1000) << "Case" << i + 1;  // the reference weights segment the scan
      EXPECT_GE(static_cast<double>(same) / want->numel(), 0.9999) << "Case" << i + 1;
    }
  }
}

TEST_F(SpineParseNet, MissingOrWrongWeightsStopTheRunBeforeAnyCase) {
  // A missing file: validation, before any stage opens.
  auto g = load_graph_file(graph_file(), registry_,
                           {"coarse.weights=/nonexistent.safetensors",
                            "fine.weights=" + ref("resunet2d_weights.safetensors")});
  ASSERT_FALSE(g.ok());
  ASSERT_EQ(g.issues.size(), 1u);
  EXPECT_EQ(g.issues[0].code, "missing_path");
  EXPECT_EQ(g.issues[0].pointer, "--set coarse.weights");
  EXPECT_THAT(g.issues[0].message,
              ::testing::HasSubstr("node 'coarse': parameter 'weights' names "
                                   "/nonexistent.safetensors, which does not exist"));
  // The wrong network's weights: at open.
  RunOptions o;
  o.input_dir = in_.str();
  o.output_dir = out_.str();
  o.progress = "none";
  g = load_graph_file(graph_file(), registry_,
                      {"coarse.weights=" + ref("resunet2d_weights.safetensors"),
                       "fine.weights=" + ref("resunet2d_weights.safetensors")});
  EXPECT_THAT([&] { run_graph(*g.graph, registry_, o); },
              ::testing::ThrowsMessage<RunError>(::testing::HasSubstr("does not fit the network")));
}

namespace {
double label_agreement(const NdArray& a, const NdArray& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return 0;
  return spineparse::testing::label_agreement(a.data<std::uint8_t>(), b.data<std::uint8_t>(),
                                              a.numel());
}

// The graph's settings for the bfloat16 agreement checks: the full-size grids on a CPU with
// native bfloat16, small grids where bfloat16 is emulated (slow), so that every CI machine runs it.
std::vector<std::string> agreement_sets(std::vector<std::string> sets) {
  sets.push_back("coarse.device=cpu");
  sets.push_back("fine.device=cpu");
  if (!nn::cpu_features().native_bf16()) {
    for (const char* s : {"coarse_prep.height=32", "coarse_prep.width=64",
                          "crop_resample.height=64", "crop_resample.width=128"})
      sets.push_back(s);
  }
  return sets;
}

std::vector<std::string> with_precision(std::vector<std::string> sets, const std::string& p) {
  sets.push_back("coarse.precision=" + p);
  sets.push_back("fine.precision=" + p);
  return sets;
}

// The chain at fp32 (into out32) and at bf16 (into out16) over `input`: each case's labels'
// agreement, printed; a case that failed is a test failure and agrees 0.
std::vector<double> bf16_agreement(Registry& registry, const std::vector<std::string>& weights,
                                   const std::string& input, const std::string& out32,
                                   const std::string& out16) {
  const auto sets = agreement_sets(weights);
  auto fp32 = spineparse::testing::run_chain(registry, graph_file(), input,
                                             with_precision(sets, "fp32"), out32);
  auto bf16 = spineparse::testing::run_chain(registry, graph_file(), input,
                                             with_precision(sets, "bf16"), out16);
  EXPECT_EQ(fp32.size(), bf16.size());
  std::vector<double> agree;
  for (std::size_t i = 0; i < std::min(fp32.size(), bf16.size()); ++i) {
    const bool failed = fp32[i]->failed() || bf16[i]->failed();
    for (const auto& c : {fp32[i], bf16[i]})
      if (c->failed()) ADD_FAILURE() << c->id() << ": " << c->error()->message;
    agree.push_back(failed ? 0.0
                           : label_agreement(*fp32[i]->get("labels"), *bf16[i]->get("labels")));
    std::printf("%s, bfloat16 vs float32 label agreement: %.5f\n", fp32[i]->id().c_str(),
                agree.back());
  }
  return agree;
}
}  // namespace

// precision=bf16 (what auto picks on CPUs with native bfloat16) against float32 on the original's
// reference case: labels agree on >= 99.9 % of voxels, and the original's own labels still pass
// the reference test's threshold.
TEST_F(SpineParseNet, BFloat16AgreesWithFloat32OnTheReferenceCase) {
  const auto agree = bf16_agreement(registry_, weights(), in_.str(), out_.str(), out_.str());
  ASSERT_EQ(agree.size(), 1u);
  std::printf("(%s grids)\n", nn::cpu_features().native_bf16() ? "full-size" : "small");
  EXPECT_GE(agree[0], 0.999);
  if (nn::cpu_features().native_bf16()) {
    auto expected = io::read_labels(ref("seg_expected.nii.gz"), 19);
    auto written = io::read_labels((out_ / "seg_Case1.nii.gz").string(), 19);  // the bf16 run's
    const double vs_original = label_agreement(*written.data, *expected.data);
    std::printf("reference case, bfloat16 vs the original's labels: %.5f\n", vs_original);
    EXPECT_GE(vs_original, 0.999);
  }
}

// The same on synthetic scans of real size (880 x 880 x 12) with the full-size networks: two
// cases of other anatomy, intensities and slice counts than the reference case.
TEST_F(SpineParseNet, BFloat16AgreesWithFloat32OnFullSizeSyntheticCases) {
  TempDir cohort;
  io::SynthOptions o;
  o.cases = 2;
  o.seed = 1717;
  const bool full = nn::cpu_features().native_bf16();
  o.min_size = o.max_size = full ? 880 : 160;
  o.min_slices = 12;
  o.max_slices = 14;
  io::write_cohort(o, cohort.str());
  TempDir out32, out16;
  const auto agree = bf16_agreement(registry_, weights(), cohort.str(), out32.str(), out16.str());
  ASSERT_EQ(agree.size(), 2u);
  for (double x : agree) EXPECT_GE(x, 0.999);
}

// The former `amp` parameter is an alias of precision bf16 on the CPU; fp16 on the CPU is refused
// at open, naming the node.
TEST_F(SpineParseNet, AmpIsAnAliasAndFp16NeedsCuda) {
  auto sets = weights();
  for (const char* s : {"coarse_prep.height=32", "coarse_prep.width=64", "crop_resample.height=64",
                        "crop_resample.width=128", "coarse.device=cpu", "fine.device=cpu"})
    sets.push_back(s);
  auto alias = sets, bf16 = with_precision(sets, "bf16");
  alias.push_back("coarse.amp=true");
  alias.push_back("fine.amp=true");
  auto a = spineparse::testing::run_chain(registry_, graph_file(), in_.str(), alias, out_.str());
  auto b = spineparse::testing::run_chain(registry_, graph_file(), in_.str(), bf16, out_.str());
  ASSERT_FALSE(a[0]->failed()) << a[0]->error()->message;
  ASSERT_FALSE(b[0]->failed()) << b[0]->error()->message;
  EXPECT_EQ(label_agreement(*a[0]->get("labels"), *b[0]->get("labels")), 1.0);

  auto fp16 = with_precision(sets, "fp16");
  try {
    spineparse::testing::run_chain(registry_, graph_file(), in_.str(), fp16, out_.str());
    FAIL() << "fp16 on the CPU ran";
  } catch (const std::exception& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("coarse"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("precision=fp16 needs CUDA"));
  }
}

TEST_F(SpineParseNet, TorchScriptNetworksWithTheSameContractRunInTheGraph) {
  // Custom networks as TorchScript files: the coarse one maps [N,1,D,H,W] to 20 channels, the fine
  // one takes (image, unary) and returns [N,20,H,W]; here channel 7 wins everywhere inside.
  torch::jit::Module coarse("Coarse");
  coarse.define(R"(
def forward(self, x):
    return x.repeat(1, 20, 1, 1, 1) * 0.0
)");
  torch::jit::Module fine("Fine");
  fine.define(R"(
def forward(self, image, unary):
    z = image.repeat(1, 20, 1, 1) * 0.0 + unary.mean() * 0.0
    z[:, 7] = 5.0
    return z
)");
  coarse.save((out_ / "coarse.pt").string());
  fine.save((out_ / "fine.pt").string());
  auto cases = spineparse::testing::run_chain(
      registry_, graph_file(), in_.str(),
      {"coarse.model=torchscript", "coarse.weights=" + (out_ / "coarse.pt").string(),
       "fine.model=torchscript", "fine.weights=" + (out_ / "fine.pt").string(),
       "coarse_prep.height=32", "coarse_prep.width=64", "crop_resample.height=64",
       "crop_resample.width=128", "coarse.device=cpu", "fine.device=cpu"},
      out_.str());
  ASSERT_EQ(cases.size(), 1u);
  ASSERT_FALSE(cases[0]->failed()) << cases[0]->error()->message;
  auto l = cases[0]->get("labels");
  const std::int64_t H = l->dim(1), W = l->dim(2);
  EXPECT_EQ(l->data<std::uint8_t>()[(5 * H + H / 2) * W + W / 2],
            7);  // inside the crop: the fine network's choice
  EXPECT_EQ(l->data<std::uint8_t>()[(5 * H + 0) * W + W / 2], 0);  // outside: background
}
