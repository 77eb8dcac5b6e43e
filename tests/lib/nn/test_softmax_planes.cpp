// The softmax from channels-last logits into planar probabilities (nn::softmax_into_planes, its
// one pass in nn/softmax_planes.cpp) against LibTorch's softmax: channel counts that are and are
// not a multiple of four, pixel counts that are no multiple of a block, logits far apart, the
// slices written where asked and nothing else, and the fallback for plain NCHW logits.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "nn/torch_util.hpp"

namespace {

// Logits [n,C,h,w] channels-last with a spread like a network's: some pixels decided by large
// margins, others close to ties.
torch::Tensor logits(std::int64_t n, std::int64_t C, std::int64_t h, std::int64_t w) {
  torch::manual_seed(7);
  auto l = torch::randn({n, C, h, w}) * 6;
  l.select(1, 0).select(1, 0).fill_(80.f);  // one row far above the rest: exp underflows
  l.select(1, C - 1).select(1, h - 1).fill_(-95.f);
  return l.contiguous(torch::MemoryFormat::ChannelsLast);
}

void expect_softmax_of(const torch::Tensor& l, const torch::Tensor& probs, std::int64_t first) {
  const auto expected = torch::softmax(l.contiguous(), 1).permute({1, 0, 2, 3});
  const auto got = probs.narrow(1, first, l.size(0));
  EXPECT_LE((got - expected).abs().max().item<float>(), 2e-7f);
  const auto rel = ((got - expected).abs() / expected.clamp_min(1e-30f)).max().item<float>();
  EXPECT_LE(rel, 1e-6f);
  EXPECT_TRUE(torch::equal(got.argmax(0), expected.argmax(0)));
}

TEST(SoftmaxPlanes, EqualsLibTorchsSoftmaxForAnyChannelAndPixelCount) {
  for (const std::int64_t C : {20, 7, 4, 1}) {
    const auto l = logits(2, C, 5, 37);  // 185 pixels a slice: two blocks of 64 and a rest
    auto probs = torch::full({C, 4, 5, 37}, -1.f);
    spineparse::nn::softmax_into_planes(l, probs, 1);
    SCOPED_TRACE("C " + std::to_string(C));
    expect_softmax_of(l, probs, 1);
    EXPECT_TRUE(probs.select(1, 0).eq(-1.f).all().item<bool>()) << "slice 0 was written";
    EXPECT_TRUE(probs.select(1, 3).eq(-1.f).all().item<bool>()) << "slice 3 was written";
  }
}

TEST(SoftmaxPlanes, PlainLogitsAndOtherDtypesTakeLibTorchsPathWithTheSameResult) {
  const auto l = logits(1, 20, 16, 32);
  auto a = torch::empty({20, 1, 16, 32}), b = torch::empty({20, 1, 16, 32});
  spineparse::nn::softmax_into_planes(l, a, 0);
  spineparse::nn::softmax_into_planes(l.contiguous(), b, 0);  // NCHW
  EXPECT_LE((a - b).abs().max().item<float>(), 2e-7f);
  auto c = torch::empty({20, 1, 16, 32});
  spineparse::nn::softmax_into_planes(l.to(torch::kBFloat16), c, 0);
  expect_softmax_of(l.to(torch::kBFloat16).to(torch::kFloat32), c, 0);
}

TEST(SoftmaxPlanes, LogitsThatDoNotFitTheProbabilitiesAreRefused) {
  const auto l = logits(2, 20, 8, 8);
  auto probs = torch::empty({20, 3, 8, 8});
  EXPECT_THROW(spineparse::nn::softmax_into_planes(l, probs, 2), std::invalid_argument);
  auto wrong_c = torch::empty({19, 3, 8, 8});
  EXPECT_THROW(spineparse::nn::softmax_into_planes(l, wrong_c, 0), std::invalid_argument);
}

}  // namespace
