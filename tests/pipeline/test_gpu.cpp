// The GPU path against the original's reference case (ctest label `gpu`; scripts/check-gpu runs
// them). Each test skips with a reason on a machine without a CUDA GPU. TensorFloat-32 is one
// switch per process, so a test that turns it on runs in its own process (ctest runs each test so).
#include <gmock/gmock.h>
#include <torch/cuda.h>

#include <cstdio>
#include <filesystem>

#include "harness.hpp"
#include "nn/safetensors.hpp"
#include "nn/torch_util.hpp"
#include "reference_case.hpp"
#include "test_util.hpp"

using namespace spineparse;
namespace fs = std::filesystem;
using spineparse::testing::TempDir;

namespace {
using spineparse::testing::label_agreement;
using spineparse::testing::ref;

class Gpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available() || torch::cuda::device_count() < 1)
      GTEST_SKIP() << "no CUDA GPU visible to LibTorch (a CPU LibTorch, no driver, or "
                      "CUDA_VISIBLE_DEVICES empty)";
    if (!fs::exists(ref("manifest.json"))) GTEST_SKIP() << "no ../shared/reference";
    spineparse::testing::set_up_reference_case(registry_, in_.str());
    e2e_ = nn::load_safetensors(ref("end_to_end.safetensors")).tensors;
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
  // The case's labels against the original's: the share that agree.
  double agreement(const Case& c) const {
    const auto& labels = *c.get("labels");
    return label_agreement(labels.data<std::uint8_t>(),
                           e2e_.at("labels").data_ptr<std::uint8_t>(), labels.numel());
  }
  // Its probabilities against the original's: the largest difference.
  double max_diff(const Case& c) const {
    const auto& probs = *c.get("probabilities");
    return spineparse::testing::diff(probs.data<float>(),
                                     e2e_.at("probabilities").data_ptr<float>(), probs.numel())
        .max;
  }
  Registry registry_;
  TempDir in_;
  std::map<std::string, torch::Tensor> e2e_;
};

// The reference's tolerances (1e-3 on the probabilities, 99.9 % of labels) at float32, TF32 off.
TEST_F(Gpu, Fp32WithoutTf32MatchesTheOriginal) {
  auto c = run("cuda:0", "fp32", false);
  ASSERT_TRUE(c && !c->failed());
  EXPECT_FALSE(nn::tf32_allowed());
  const double d = max_diff(*c), a = agreement(*c);
  std::printf("cuda fp32, tf32 off: probabilities max diff %.3g, labels agree %.5f\n", d, a);
  EXPECT_LE(d, 1e-3);
  EXPECT_GE(a, 0.999);
}

// TF32 on: faster on Ampere and later, about 3 digits; the labels still agree.
TEST_F(Gpu, Tf32KeepsTheOriginalsLabels) {
  auto c = run("cuda:0", "fp32", true);
  ASSERT_TRUE(c && !c->failed());
  EXPECT_TRUE(nn::tf32_allowed());
  const double d = max_diff(*c), a = agreement(*c);
  std::printf("cuda fp32, tf32 on: probabilities max diff %.3g, labels agree %.5f\n", d, a);
  EXPECT_GE(a, 0.999);
}

// Autocast in float16 (what auto picks on CUDA) and bfloat16 against the original's labels.
TEST_F(Gpu, HalfPrecisionsKeepTheOriginalsLabels) {
  for (const char* p : {"fp16", "bf16"}) {
    auto c = run("cuda:0", p);
    ASSERT_TRUE(c && !c->failed()) << p;
    const double a = agreement(*c);
    std::printf("cuda %s: labels agree with the original's %.5f\n", p, a);
    EXPECT_GE(a, 0.995) << p;
  }
}

// "cuda" names cuda:0: the same labels, bit for bit.
TEST_F(Gpu, CudaIsCuda0) {
  auto a = run("cuda", "fp32"), b = run("cuda:0", "fp32");
  ASSERT_TRUE(a && b && !a->failed() && !b->failed());
  const auto& la = *a->get("labels");
  EXPECT_EQ(label_agreement(la.data<std::uint8_t>(), b->get("labels")->data<std::uint8_t>(),
                            la.numel()),
            1.0);
}

}  // namespace
