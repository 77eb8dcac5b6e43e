// The GPU path against the original's reference case (ctest label `gpu`; scripts/check-gpu runs
// them). Each test skips with a reason on a machine without a CUDA GPU. TensorFloat-32 is one
// switch per process, so a test that turns it on runs in its own process (ctest runs each test so).
#include <gmock/gmock.h>
#include <torch/cuda.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "coarse_stages.hpp"
#include "fine_stages.hpp"
#include "harness.hpp"
#include "io/volume_io.hpp"
#include "io_stages.hpp"
#include "metrics_stages.hpp"
#include "nn/safetensors.hpp"
#include "nn/torch_util.hpp"
#include "refine_stages.hpp"
#include "test_util.hpp"

using namespace spineparse;
namespace fs = std::filesystem;
using spineparse::testing::TempDir;

namespace {
std::string ref(const std::string& f) { return spineparse::testing::reference_dir() + "/" + f; }

class Gpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available() || torch::cuda::device_count() < 1)
      GTEST_SKIP() << "no CUDA GPU visible to LibTorch (a CPU LibTorch, no driver, or "
                      "CUDA_VISIBLE_DEVICES empty)";
    if (!fs::exists(ref("manifest.json"))) GTEST_SKIP() << "no ../shared/reference";
    register_io_stages(registry_);
    register_coarse_stages(registry_);
    register_fine_stages(registry_);
    register_refine_stages(registry_);
    register_metrics_stages(registry_);
    fs::create_directories(in_ / "original_mr");
    fs::copy_file(ref("raw.nii.gz"), in_ / "original_mr" / "Case1.nii.gz");
  }
  // The reference case on `device` in `precision`, with TF32 as asked; its case.
  CasePtr run(const std::string& device, const std::string& precision, bool tf32 = false) {
    TempDir out;
    std::vector<std::string> sets = {"coarse.weights=" + ref("gcsn_weights.safetensors"),
                                     "fine.weights=" + ref("resunet2d_weights.safetensors"),
                                     "to_raw.keep_probabilities=true"};
    for (const char* node : {"coarse", "fine"}) {
      sets.push_back(std::string(node) + ".device=" + device);
      sets.push_back(std::string(node) + ".precision=" + precision);
      sets.push_back(std::string(node) + ".tf32=" + (tf32 ? "true" : "false"));
    }
    auto cases = spineparse::testing::run_chain(
        registry_, spineparse::testing::source_dir() + "/graphs/spineparsenet.json", in_.str(),
        sets, out.str());
    EXPECT_EQ(cases.size(), 1u);
    if (cases.size() != 1) return nullptr;
    EXPECT_FALSE(cases[0]->failed()) << cases[0]->error()->message;
    return cases[0];
  }
  Registry registry_;
  TempDir in_;
};

double max_diff(const NdArray& a, const torch::Tensor& b) {
  double m = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i)
    m = std::max(m, std::abs(static_cast<double>(a.data<float>()[i]) - b.data_ptr<float>()[i]));
  return m;
}

double agreement(const NdArray& a, const std::uint8_t* b) {
  std::int64_t same = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) same += a.data<std::uint8_t>()[i] == b[i];
  return static_cast<double>(same) / static_cast<double>(a.numel());
}

// The reference's tolerances (1e-3 on the probabilities, 99.9 % of labels) at float32, TF32 off.
TEST_F(Gpu, Fp32WithoutTf32MatchesTheOriginal) {
  auto c = run("cuda:0", "fp32", false);
  ASSERT_TRUE(c && !c->failed());
  EXPECT_FALSE(nn::tf32_allowed());
  const auto e2e = nn::load_safetensors(ref("end_to_end.safetensors")).tensors;
  const double d = max_diff(*c->get("probabilities"), e2e.at("probabilities"));
  const double a = agreement(*c->get("labels"), e2e.at("labels").data_ptr<std::uint8_t>());
  std::printf("cuda fp32, tf32 off: probabilities max diff %.3g, labels agree %.5f\n", d, a);
  EXPECT_LE(d, 1e-3);
  EXPECT_GE(a, 0.999);
}

// TF32 on: faster on Ampere and later, about 3 digits; the labels still agree.
TEST_F(Gpu, Tf32KeepsTheOriginalsLabels) {
  auto c = run("cuda:0", "fp32", true);
  ASSERT_TRUE(c && !c->failed());
  EXPECT_TRUE(nn::tf32_allowed());
  const auto e2e = nn::load_safetensors(ref("end_to_end.safetensors")).tensors;
  const double d = max_diff(*c->get("probabilities"), e2e.at("probabilities"));
  const double a = agreement(*c->get("labels"), e2e.at("labels").data_ptr<std::uint8_t>());
  std::printf("cuda fp32, tf32 on: probabilities max diff %.3g, labels agree %.5f\n", d, a);
  EXPECT_GE(a, 0.999);
}

// Autocast in float16 (what auto picks on CUDA) and bfloat16 against the original's labels.
TEST_F(Gpu, HalfPrecisionsKeepTheOriginalsLabels) {
  const auto e2e = nn::load_safetensors(ref("end_to_end.safetensors")).tensors;
  for (const char* p : {"fp16", "bf16"}) {
    auto c = run("cuda:0", p);
    ASSERT_TRUE(c && !c->failed()) << p;
    const double a = agreement(*c->get("labels"), e2e.at("labels").data_ptr<std::uint8_t>());
    std::printf("cuda %s: labels agree with the original's %.5f\n", p, a);
    EXPECT_GE(a, 0.995) << p;
  }
}

// "cuda" names cuda:0: the same labels, bit for bit.
TEST_F(Gpu, CudaIsCuda0) {
  auto a = run("cuda", "fp32"), b = run("cuda:0", "fp32");
  ASSERT_TRUE(a && b && !a->failed() && !b->failed());
  const auto& la = *a->get("labels");
  EXPECT_EQ(agreement(la, b->get("labels")->data<std::uint8_t>()), 1.0);
}

}  // namespace
