// coarse.preprocess through the stage harness: shapes, the slice padding and its value, the
// crop/resize of a constant, and a missing field failing the case under the executor's rules.
#include <gmock/gmock.h>

#include <algorithm>

#include "coarse_stages.hpp"
#include "spineparse/stage_harness.hpp"

using namespace spineparse;

namespace {

NdArrayPtr constant_image(std::int64_t D, std::int64_t H, std::int64_t W, float v) {
  auto a = NdArray::make<float>({D, H, W});
  std::fill(a->data<float>(), a->data<float>() + a->numel(), v);
  return a;
}

class CoarsePreprocess : public ::testing::Test {
 protected:
  void SetUp() override { register_coarse_stages(registry_); }
  Registry registry_;
};

TEST_F(CoarsePreprocess, PadsSlicesWithTheNormalisedRawZeroAndResizesTheCentralRows) {
  StageHarness h(registry_, "coarse.preprocess", {"height=16", "width=32"});
  auto norm = NdArray::make<double>({2});
  norm->data<double>()[0] = 466.0;
  norm->data<double>()[1] = 379.0;
  auto c = StageHarness::make_case("Case1",
                                   {{"image", constant_image(5, 24, 48, 0.5f)}, {"norm", norm}});
  auto out = h.process(c);
  ASSERT_FALSE(out->failed()) << out->error()->message;
  auto in = out->get("coarse_input");
  EXPECT_EQ(in->shape(), (std::vector<std::int64_t>{1, 1, 18, 16, 32}));
  const std::int64_t* pad = out->get("coarse_pad")->data<std::int64_t>();
  EXPECT_EQ(pad[0], 7);  // ceil((18 - 5) / 2) before
  EXPECT_EQ(pad[1], 5);
  const float* x = in->data<float>();
  const std::int64_t plane = 16 * 32;
  for (std::int64_t d = 0; d < 18; ++d) {
    const bool padded = d < 7 || d >= 12;
    const float want = padded ? static_cast<float>(-466.0 / 379.0) : 0.5f;
    for (std::int64_t i = 0; i < plane; ++i)
      ASSERT_NEAR(x[d * plane + i], want, 1e-4) << "slice " << d;
  }
}

TEST_F(CoarsePreprocess, KeepsMoreSlicesThanTheMinimumUnpadded) {
  StageHarness h(registry_, "coarse.preprocess", {"height=16", "width=16"});
  auto out =
      h.process(StageHarness::make_case("Case2", {{"image", constant_image(20, 16, 16, 1.0f)}}));
  ASSERT_FALSE(out->failed());
  EXPECT_EQ(out->get("coarse_input")->dim(2), 20);
  EXPECT_EQ(out->get("coarse_pad")->data<std::int64_t>()[0], 0);
}

TEST_F(CoarsePreprocess, AMissingImageFailsTheCaseNamingTheNode) {
  StageContext ctx;
  ctx.node_id = "coarse_prep";
  StageHarness h(registry_, "coarse.preprocess", {}, ctx);
  auto out = h.process(StageHarness::make_case("Case3", {}));
  ASSERT_TRUE(out->failed());
  EXPECT_EQ(out->error()->node, "coarse_prep");
  EXPECT_THAT(out->error()->message, ::testing::HasSubstr("image"));
}

TEST_F(CoarsePreprocess, ParametersAreResolvedAndCheckedAsInAGraph) {
  EXPECT_EQ(StageHarness(registry_, "coarse.preprocess").params().get_int("height"), 128);
  EXPECT_THAT([&] { StageHarness(registry_, "coarse.preprocess", {"height=4"}); },
              ::testing::ThrowsMessage<std::invalid_argument>(::testing::HasSubstr("outside")));
  EXPECT_THAT([&] { StageHarness(registry_, "coarse.preprocess", {"heigth=64"}); },
              ::testing::ThrowsMessage<std::invalid_argument>(
                  ::testing::HasSubstr("no parameter 'heigth'")));
}

}  // namespace
