// Per-structure statistics: counts, volumes, intensities and centroids in patient coordinates.
#include <gmock/gmock.h>

#include <algorithm>
#include <cmath>

#include "metrics/statistics.hpp"

using namespace spineparse;
using namespace spineparse::metrics;

TEST(Statistics, CountsVolumesIntensitiesAndCentroids) {
  // [D,H,W] = [2,3,4]; label 1 at (d,h,w) = (0,0,0),(1,2,3); label 19 at (0,1,1).
  auto labels = NdArray::make<std::uint8_t>({2, 3, 4});
  auto image = NdArray::make<float>({2, 3, 4});
  for (std::int64_t i = 0; i < 24; ++i) image->data<float>()[i] = static_cast<float>(i);
  auto at = [](std::int64_t d, std::int64_t h, std::int64_t w) { return (d * 3 + h) * 4 + w; };
  labels->data<std::uint8_t>()[at(0, 0, 0)] = 1;
  labels->data<std::uint8_t>()[at(1, 2, 3)] = 1;
  labels->data<std::uint8_t>()[at(0, 1, 1)] = 19;
  Geometry g;
  g.spacing = {0.5, 2.0, 4.0};  // along file axes i (H), j (W), k (D)
  g.origin = {10, 20, 30};
  g.direction = {0, 0, 1, 1, 0, 0, 0, -1, 0};  // i -> +y, j -> -z, k -> +x (LPS)
  auto s = structure_statistics(*labels, *image, g);
  ASSERT_EQ(s.size(), 19u);
  EXPECT_EQ(s[0].label, 1);
  EXPECT_EQ(s[0].voxels, 2);
  EXPECT_DOUBLE_EQ(s[0].volume_mm3, 2 * 0.5 * 2.0 * 4.0);
  EXPECT_DOUBLE_EQ(s[0].mean_intensity, (0.0 + 23.0) / 2);
  EXPECT_DOUBLE_EQ(s[0].median_intensity, 0.0);  // the lower median of two
  // Mean index (i, j, k) = (1, 1.5, 0.5): x = 30 + 4 * 0.5, y = 20 + 0.5 * 1, z = 30 - 2 * 1.5.
  EXPECT_DOUBLE_EQ(s[0].centroid[0], 10 + 4.0 * 0.5);
  EXPECT_DOUBLE_EQ(s[0].centroid[1], 20 + 0.5 * 1.0);
  EXPECT_DOUBLE_EQ(s[0].centroid[2], 30 - 2.0 * 1.5);
  EXPECT_EQ(s[18].voxels, 1);
  EXPECT_DOUBLE_EQ(s[18].mean_intensity, static_cast<double>(at(0, 1, 1)));
  EXPECT_EQ(s[5].voxels, 0);
  EXPECT_TRUE(std::isnan(s[5].mean_intensity));
  const std::string rows = statistics_csv_rows("Case,1", s);  // no QC: the confidence is blank
  EXPECT_THAT(rows, ::testing::StartsWith("\"Case,1\",1,S,2,8,11.5,0,12,20.5,27,\n"));
  EXPECT_THAT(rows, ::testing::HasSubstr("\"Case,1\",6,L1,0,0,,,,,,\n"));
  s[0].confidence = 0.25;
  EXPECT_THAT(statistics_csv_rows("c", s),
              ::testing::StartsWith("c,1,S,2,8,11.5,0,12,20.5,27,0.25\n"));
  // A normalised image reports the file's intensities through the rescale (x * 379 + 466).
  const auto r = structure_statistics(*labels, *image, g, Rescale{466, 379});
  EXPECT_DOUBLE_EQ(r[0].mean_intensity, (466.0 + (23.0 * 379 + 466)) / 2);
  EXPECT_DOUBLE_EQ(r[18].median_intensity, at(0, 1, 1) * 379.0 + 466);
  EXPECT_THROW(structure_statistics(*labels, *NdArray::make<float>({2, 3, 5}), g),
               std::invalid_argument);
}

// Every structure's count, centroid, mean and median against a voxel-by-voxel tally, on labels
// scattered over many rows (with values past the last structure, which count as background).
TEST(Statistics, ScatteredLabelsMatchAVoxelByVoxelTally) {
  const std::int64_t D = 5, H = 37, W = 29;
  auto labels = NdArray::make<std::uint8_t>({D, H, W});
  auto image = NdArray::make<float>({D, H, W});
  std::uint32_t r = 7;
  auto next = [&] { return r = r * 1664525u + 1013904223u; };
  for (std::int64_t i = 0; i < D * H * W; ++i) {
    const std::uint32_t u = next() >> 8;
    labels->data<std::uint8_t>()[i] = u % 3 == 0 ? 0 : static_cast<std::uint8_t>(u % 23);
    image->data<float>()[i] = static_cast<float>(next() % 1000) / 8;
  }
  Geometry g;
  g.spacing = {0.7, 1.1, 3.5};
  g.origin = {-4, 2, 9};
  g.direction = {0, 0, 1, 1, 0, 0, 0, -1, 0};
  const auto s = structure_statistics(*labels, *image, g);
  for (int c = 1; c < 20; ++c) {
    std::vector<float> v;
    double sum[3] = {0, 0, 0};
    for (std::int64_t d = 0; d < D; ++d)
      for (std::int64_t h = 0; h < H; ++h)
        for (std::int64_t w = 0; w < W; ++w) {
          const std::int64_t i = (d * H + h) * W + w;
          if (labels->data<std::uint8_t>()[i] != c) continue;
          v.push_back(image->data<float>()[i]);
          sum[0] += h, sum[1] += w, sum[2] += d;
        }
    const auto& t = s[static_cast<std::size_t>(c - 1)];
    ASSERT_EQ(t.voxels, static_cast<std::int64_t>(v.size())) << "label " << c;
    ASSERT_FALSE(v.empty());
    double mean = 0;
    for (float f : v) mean += f;
    std::sort(v.begin(), v.end());
    EXPECT_DOUBLE_EQ(t.mean_intensity, mean / v.size()) << "label " << c;
    EXPECT_EQ(t.median_intensity, v[(v.size() - 1) / 2]) << "label " << c;
    const double n = static_cast<double>(v.size());
    EXPECT_NEAR(t.centroid[0], -4 + 3.5 * sum[2] / n, 1e-9) << "label " << c;
    EXPECT_NEAR(t.centroid[1], 2 + 0.7 * sum[0] / n, 1e-9) << "label " << c;
    EXPECT_NEAR(t.centroid[2], 9 - 1.1 * sum[1] / n, 1e-9) << "label " << c;
  }
}

// The lower median of long lists (counted by key) and short ones (nth_element) against a sort:
// negative and positive values, duplicates, huge and tiny magnitudes, and -0 reported as 0.
TEST(Statistics, MeanAndMedianMatchASortedCopy) {
  std::uint32_t r = 99;
  auto next = [&] { return r = r * 1664525u + 1013904223u; };
  for (const std::size_t n : {1u, 2u, 7u, 65535u, 65536u, 200001u, 300000u}) {
    for (int mode = 0; mode < 3; ++mode) {
      std::vector<float> v(n);
      for (auto& f : v) {
        const std::uint32_t u = next();
        f = mode == 0   ? static_cast<float>(static_cast<int>(u % 2001) - 1000)  // duplicates
            : mode == 1 ? static_cast<float>(static_cast<int>(u >> 1) - (1 << 30)) * 1e-9f
                        : (u & 1 ? -1.f : 1.f) * static_cast<float>(u >> 9) * 1e20f;
      }
      if (n > 2) v[n / 2] = -0.0f, v[n / 3] = 0.0f;
      std::vector<float> sorted = v;
      std::sort(sorted.begin(), sorted.end());
      double sum = 0;
      for (float f : v) sum += f;
      const MeanMedian mm = mean_and_median(v);
      const float want = sorted[(n - 1) / 2];
      EXPECT_EQ(mm.median, want) << n << " values, mode " << mode;
      EXPECT_FALSE(std::signbit(mm.median) && mm.median == 0.0) << n << " values, mode " << mode;
      EXPECT_EQ(mm.mean, sum / static_cast<double>(n)) << n << " values, mode " << mode;
    }
  }
}
