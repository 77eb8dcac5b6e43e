// nn::resize_slices against scikit-image 0.19's transform.resize(order=3, mode='constant',
// anti_aliasing=True) with SciPy 1.10 (the original's preprocessing): values that program printed
// for the same deterministic volumes, one shrunk along H and stretched along W (the Gaussian on
// one axis only), one shrunk along both with a non-zero cval; both wider than one strip of
// columns (64) and not a multiple of it, so a lost or shifted strip shows.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "nn/resample.hpp"

namespace {

using spineparse::nn::central_rows;
using spineparse::nn::resize_slices;

// float32(sin(0.37 r + 0.11 c + d) * 300 + 400 + ((7 r + 13 c + 5 d) % 17) * 20), in double as numpy.
std::vector<float> volume(std::int64_t D, std::int64_t H, std::int64_t W) {
  std::vector<float> v(static_cast<std::size_t>(D * H * W));
  for (std::int64_t d = 0; d < D; ++d)
    for (std::int64_t r = 0; r < H; ++r)
      for (std::int64_t c = 0; c < W; ++c)
        v[(d * H + r) * W + c] = static_cast<float>(std::sin(0.37 * r + 0.11 * c + d) * 300 + 400 +
                                                    ((r * 7 + c * 13 + d * 5) % 17) * 20);
  return v;
}

struct Sample {
  std::int64_t d, h, w;
  double value;
};

void expect_like_skimage(std::int64_t D, std::int64_t H, std::int64_t W, std::int64_t oh,
                         std::int64_t ow, double cval, double sum,
                         const std::vector<Sample>& samples) {
  const auto in = volume(D, H, W);
  const auto out = resize_slices(in.data(), D, H, W, central_rows(H), oh, ow, cval);
  ASSERT_EQ(out.size(), static_cast<std::size_t>(D * oh * ow));
  double total = 0;
  for (float v : out) total += v;
  EXPECT_NEAR(total, sum, 1e-6 * std::abs(sum));
  for (const auto& s : samples)
    EXPECT_NEAR(out[(s.d * oh + s.h) * ow + s.w], s.value, 1e-4)
        << "at " << s.d << "," << s.h << "," << s.w;
}

TEST(ResizeSlices, ShrinksOneAxisAndStretchesTheOtherAsScikitImage) {
  expect_like_skimage(2, 101, 77, 20, 150, 0.0, 3347231,
                      {{0, 0, 0, 409.204163},
                       {0, 10, 50, 624.371582},
                       {1, 19, 149, 308.023926},
                       {1, 3, 76, 289.205902},
                       {0, 6, 64, 526.611572},
                       {1, 10, 0, 665.025696}});
}

TEST(ResizeSlices, ShrinksBothAxesWithAnOutsideValueAsScikitImage) {
  expect_like_skimage(2, 101, 130, 12, 30, -1.5, 393904.066,
                      {{0, 0, 0, 304.041046},
                       {0, 6, 10, 363.977081},
                       {1, 11, 29, 254.553726},
                       {1, 3, 16, 315.79068},
                       {0, 4, 28, 317.349945},
                       {1, 6, 0, 720.049866}});
}

}  // namespace
