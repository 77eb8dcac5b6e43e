// SliceBatcher: slices of concurrent cases share forward passes, and every case gets back exactly
// its own rows, in order; a failing pass fails the cases it held and no other.
#include <gmock/gmock.h>
#include <torch/torch.h>

#include <atomic>
#include <stdexcept>
#include <thread>

#include "slice_batcher.hpp"

using spineparse::plugins::fine::SliceBatcher;

namespace {

// A case whose every voxel names it: image = 1000 * case + slice, unary = its negative.
struct FakeCase {
  torch::Tensor image, unary;
};
FakeCase make_case(int id, std::int64_t slices) {
  auto s = torch::arange(slices, torch::kFloat32).view({slices, 1, 1, 1});
  return {(s + 1000.0f * id).expand({slices, 1, 4, 6}).contiguous(),
          (-(s + 1000.0f * id)).expand({slices, 3, 2, 3}).contiguous()};
}
// [n,C,h,w]: channel c holds image * (c + 1) + image + mean(unary), which is image * (c + 1) only
// when the image and unary rows come from the same slice of the same case.
torch::Tensor fake_forward(const torch::Tensor& image, const torch::Tensor& unary) {
  auto u = unary.mean({1, 2, 3}).view({-1, 1, 1, 1});
  return torch::cat({image + u + image, image * 2 + u + image, image * 3 + u + image}, 1);
}

void expect_rows_of(const torch::Tensor& out, int id, std::int64_t slices) {
  ASSERT_EQ(out.sizes(), (std::vector<std::int64_t>{3, slices, 4, 6}));
  for (std::int64_t c = 0; c < 3; ++c)
    for (std::int64_t d = 0; d < slices; ++d) {
      const float v = 1000.0f * id + d;
      EXPECT_EQ(out[c][d][2][3].item<float>(), v * (c + 1)) << "case " << id << " slice " << d;
    }
}

}  // namespace

TEST(SliceBatcher, CasesShareFullPassesAndGetTheirOwnRowsBack) {
  // A leader waits up to 2 s for a full batch of 16: the three cases (12 + 12 + 5 slices) arrive
  // well within that, so passes hold slices of several cases.
  SliceBatcher batcher(16, 2000);
  std::atomic<int> passes{0};
  auto forward = [&](const torch::Tensor& image, const torch::Tensor& unary) {
    ++passes;
    EXPECT_LE(image.size(0), 16);
    return fake_forward(image, unary);
  };
  const std::vector<std::int64_t> slices = {12, 12, 5};
  std::vector<SliceBatcher::Result> results(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      auto c = make_case(i + 1, slices[i]);
      results[i] = batcher.run(c.image, c.unary, forward);
    });
  }
  for (auto& t : threads) t.join();
  int shared = 0;
  for (int i = 0; i < 3; ++i) {
    expect_rows_of(results[i].out, i + 1, slices[i]);
    shared += results[i].shared_passes;
  }
  EXPECT_EQ(passes.load(), 2);  // 29 slices in passes of 16 and 13
  EXPECT_GT(shared, 0);
}

TEST(SliceBatcher, AFailingPassFailsOnlyTheCasesItHeld) {
  SliceBatcher batcher(4, 0);
  auto forward = [](const torch::Tensor& image, const torch::Tensor& unary) {
    if (image.max().item<float>() >= 2000.0f) throw std::runtime_error("device out of memory");
    return fake_forward(image, unary);
  };
  auto bad = make_case(2, 10);
  EXPECT_THAT([&] { batcher.run(bad.image, bad.unary, forward); },
              ::testing::ThrowsMessage<std::runtime_error>(::testing::HasSubstr("out of memory")));
  auto good = make_case(1, 10);  // the batcher is still usable afterwards
  auto r = batcher.run(good.image, good.unary, forward);
  expect_rows_of(r.out, 1, 10);
  EXPECT_EQ(r.passes, 3);
  EXPECT_EQ(r.shared_passes, 0);
}
