// fine.prepare and fine.to_raw through the stage harness.
#include <gmock/gmock.h>

#include <algorithm>
#include <cmath>

#include "fine_stages.hpp"
#include "spineparse/stage_harness.hpp"

using namespace spineparse;

namespace {

class FineStages : public ::testing::Test {
 protected:
  void SetUp() override { register_fine_stages(registry_); }
  Registry registry_;
};

NdArrayPtr constant_image(std::int64_t D, std::int64_t H, std::int64_t W, float v) {
  auto a = NdArray::make<float>({D, H, W});
  std::fill(a->data<float>(), a->data<float>() + a->numel(), v);
  return a;
}

TEST_F(FineStages, PrepareResizesTheCentralRowsOfEverySliceWithoutPadding) {
  StageHarness h(registry_, "fine.prepare", {"height=16", "width=32"});
  auto out =
      h.process(StageHarness::make_case("Case1", {{"image", constant_image(3, 20, 40, -0.25f)}}));
  ASSERT_FALSE(out->failed()) << out->error()->message;
  auto mr = out->get("fine_mr");
  EXPECT_EQ(mr->shape(), (std::vector<std::int64_t>{3, 16, 32}));
  for (std::int64_t i = 0; i < mr->numel(); ++i) ASSERT_NEAR(mr->data<float>()[i], -0.25f, 1e-4);
}

// Class 3 wins on the left half of the fine grid, class 12 on the right: on the raw grid the
// central rows [H/4, H - H/4) carry those labels, the rows outside are background.
TEST_F(FineStages, ToRawTakesTheArgmaxOnTheCentralRowsAndBackgroundOutside) {
  const std::int64_t C = 20, D = 2, h = 8, w = 16, H = 10, W = 32;
  auto probs = NdArray::make<float>({C, D, h, w});
  std::fill(probs->data<float>(), probs->data<float>() + probs->numel(), 0.01f);
  for (std::int64_t d = 0; d < D; ++d)
    for (std::int64_t y = 0; y < h; ++y)
      for (std::int64_t x = 0; x < w; ++x)
        probs->data<float>()[(((x < w / 2 ? 3 : 12) * D + d) * h + y) * w + x] = 0.9f;
  StageHarness harness(registry_, "fine.to_raw", {"keep_probabilities=true"});
  auto out = harness.process(StageHarness::make_case(
      "Case1", {{"fine_probs", probs}, {"image", constant_image(D, H, W, 0)}}));
  ASSERT_FALSE(out->failed()) << out->error()->message;
  EXPECT_FALSE(out->has("fine_probs"));  // consumed
  EXPECT_EQ(out->get("probabilities")->shape(), (std::vector<std::int64_t>{C, D, H, W}));
  auto labels = out->get("labels");
  ASSERT_EQ(labels->shape(), (std::vector<std::int64_t>{D, H, W}));
  const std::uint8_t* L = labels->data<std::uint8_t>();
  for (std::int64_t d = 0; d < D; ++d) {
    for (std::int64_t y = 0; y < H; ++y) {
      const bool inside = y >= H / 4 && y < H - H / 4;
      EXPECT_EQ(L[(d * H + y) * W + 0], inside ? 3 : 0) << "row " << y;
      EXPECT_EQ(L[(d * H + y) * W + W - 1], inside ? 12 : 0) << "row " << y;
    }
  }
}

TEST_F(FineStages, ToRawFailsTheCaseWhenTheSlicesDisagree) {
  StageHarness h(registry_, "fine.to_raw");
  auto out = h.process(
      StageHarness::make_case("Case1", {{"fine_probs", NdArray::make<float>({20, 3, 4, 4})},
                                        {"image", constant_image(2, 8, 8, 0)}}));
  ASSERT_TRUE(out->failed());
  EXPECT_EQ(out->error()->node, "fine.to_raw");
  EXPECT_THAT(out->error()->message, ::testing::HasSubstr("3 slices, the image 2"));
}

// Random probabilities on a fine grid smaller along H and larger along W than the raw crop,
// over more rows than one block of work: every probability and label equals one bilinear
// (align_corners) step per voxel and the first maximum over the classes.
TEST_F(FineStages, ToRawEqualsBilinearPerVoxelAndTheFirstMaximum) {
  const std::int64_t C = 20, D = 2, h = 23, w = 41, H = 150, W = 29;
  auto probs = NdArray::make<float>({C, D, h, w});
  std::uint32_t r = 7;
  for (std::int64_t i = 0; i < probs->numel(); ++i) {
    r = r * 1664525u + 1013904223u;
    probs->data<float>()[i] = static_cast<float>((r >> 8) % 8) / 8.0f;  // ties on purpose
  }
  StageHarness harness(registry_, "fine.to_raw", {"keep_probabilities=true"});
  auto out = harness.process(StageHarness::make_case(
      "Case1", {{"fine_probs", probs}, {"image", constant_image(D, H, W, 0)}}));
  ASSERT_FALSE(out->failed()) << out->error()->message;
  const std::int64_t top = H / 4, rows = H - 2 * (H / 4);
  auto lerp = [](std::int64_t in, std::int64_t out, std::int64_t o, std::int64_t* i0,
                 std::int64_t* i1, float* l1) {
    const float src = static_cast<float>(in - 1) / static_cast<float>(out - 1) * o;
    *i0 = static_cast<std::int64_t>(src);
    *i1 = *i0 + (*i0 < in - 1 ? 1 : 0);
    *l1 = src - static_cast<float>(*i0);
  };
  const float* P = probs->data<float>();
  const float* F = out->get("probabilities")->data<float>();
  const std::uint8_t* L = out->get("labels")->data<std::uint8_t>();
  for (std::int64_t d = 0; d < D; ++d)
    for (std::int64_t y = 0; y < H; ++y)
      for (std::int64_t x = 0; x < W; ++x) {
        const bool inside = y >= top && y < top + rows;
        int expected = 0;
        float best = -1;
        for (std::int64_t c = 0; c < C; ++c) {
          float v = 0;
          if (inside) {
            std::int64_t y0, y1, x0, x1;
            float ly, lx;
            lerp(h, rows, y - top, &y0, &y1, &ly);
            lerp(w, W, x, &x0, &x1, &lx);
            const float* p = P + (c * D + d) * h * w;
            v = (1 - ly) * ((1 - lx) * p[y0 * w + x0] + lx * p[y0 * w + x1]) +
                ly * ((1 - lx) * p[y1 * w + x0] + lx * p[y1 * w + x1]);
          }
          ASSERT_NEAR(F[((c * D + d) * H + y) * W + x], v, 1e-6) << c << " " << d << " " << y;
          if (v > best) best = v, expected = static_cast<int>(c);
        }
        ASSERT_EQ(L[(d * H + y) * W + x], inside ? expected : 0) << d << " " << y << " " << x;
      }
}

// Without keep_probabilities, voxels whose neighbours share a clear winner take it without the
// other classes (fine.to_raw's shortcut): labels and label_probability must be the bytes the
// class-by-class path gives. Regions of one winning class each, smooth borders between them,
// pixels whose top two classes tie or differ by one ulp or 1e-7 to 1e-4, a few NaN, a slice of random
// values where no shortcut applies; more rows than one block of work.
TEST_F(FineStages, ToRawShortcutGivesTheBytesOfEveryClass) {
  const std::int64_t C = 20, D = 3, h = 40, w = 64, H = 300, W = 200;
  auto probs = NdArray::make<float>({C, D, h, w});
  float* P = probs->data<float>();
  std::uint32_t r = 11;
  auto next = [&r] { return r = r * 1664525u + 1013904223u; };
  const float gaps[] = {0.0f, 1e-7f, 1e-6f, 3e-6f, 1e-5f, 2e-5f, 1e-4f};
  for (std::int64_t d = 0; d < D; ++d)
    for (std::int64_t y = 0; y < h; ++y)
      for (std::int64_t x = 0; x < w; ++x) {
        auto at = [&](std::int64_t c) -> float& { return P[((c * D + d) * h + y) * w + x]; };
        for (std::int64_t c = 0; c < C; ++c) at(c) = 0.02f;
        if (d == 2) {  // random: mixed everywhere
          for (std::int64_t c = 0; c < C; ++c) at(c) = static_cast<float>(next() >> 8 & 1023) / 1024;
          continue;
        }
        // `beside` comes first among the classes mostly, so a tie the rounding makes goes to it
        const std::int64_t region = y / 10 * 4 + x / 16;
        const std::int64_t winner = region % C, beside = (winner + C - 1) % C;
        const float edge = std::min(1.0f, static_cast<float>(x % 16) / 3.0f);  // a smooth border
        at(winner) = 0.5f + 0.3f * edge;
        at(beside) = 0.5f - 0.2f * edge;
        switch (region % 5) {  // whole regions of (near) ties, so that all four neighbours are
          case 1:
            at(beside) = std::nextafter(at(winner), 0.0f);  // one ulp apart
            break;
          case 2:
            at(beside) = at(winner);
            break;
          case 3:
            at(beside) = at(winner) - gaps[next() % 7];
            break;
        }
        if (next() % 9 == 0) at(beside) = at(winner) - gaps[next() % 7];
        if (next() % 251 == 0) at(next() % C) = NAN;
      }
  auto run = [&](bool keep) {
    StageHarness harness(registry_, "fine.to_raw",
                         {std::string("keep_probabilities=") + (keep ? "true" : "false")});
    auto out = harness.process(StageHarness::make_case(
        "Case1", {{"fine_probs", probs}, {"image", constant_image(D, H, W, 0)}}));
    EXPECT_FALSE(out->failed()) << out->error()->message;
    return out;
  };
  const auto fast = run(false), every = run(true);
  for (const char* field : {"labels", "label_probability"}) {
    const auto a = fast->get(field), b = every->get(field);
    ASSERT_EQ(a->shape(), b->shape());
    std::int64_t differ = 0;
    for (std::int64_t i = 0; i < a->numel(); ++i)
      differ += a->data<std::uint8_t>()[i] != b->data<std::uint8_t>()[i];
    EXPECT_EQ(differ, 0) << field;
  }
}

// label_probability is lround(255 x the top probability clamped to [0, 1]), also at the halves
// between levels and one ulp either side of them (a fine grid the size of the raw crop, so each
// voxel's value is its own probability).
TEST_F(FineStages, LabelProbabilityRoundsAsLround) {
  std::vector<float> values = {-0.5f, 0.0f, 1e-9f, 0.5f, 1.0f, 1.5f};
  for (int k = 0; k < 255; ++k) {
    const float half = (static_cast<float>(k) + 0.5f) / 255.0f;
    for (float v : {half, std::nextafter(half, 0.0f), std::nextafter(half, 2.0f)}) values.push_back(v);
  }
  const auto n = static_cast<std::int64_t>(values.size());
  auto probs = NdArray::make<float>({1, 1, 2, n});
  for (std::int64_t i = 0; i < n; ++i)
    probs->data<float>()[i] = probs->data<float>()[n + i] = values[static_cast<std::size_t>(i)];
  StageHarness harness(registry_, "fine.to_raw", {});
  auto out = harness.process(StageHarness::make_case(
      "Case1", {{"fine_probs", probs}, {"image", constant_image(1, 4, n, 0)}}));
  ASSERT_FALSE(out->failed()) << out->error()->message;
  const std::uint8_t* top = out->get("label_probability")->data<std::uint8_t>();
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = values[static_cast<std::size_t>(i)], best = v > -1.0f ? v : -1.0f;
    const long want = std::lround(std::clamp(best, 0.0f, 1.0f) * 255.0f);
    ASSERT_EQ(top[n + i], want) << "probability " << v;  // row 1: the first of the crop
  }
}

}  // namespace
