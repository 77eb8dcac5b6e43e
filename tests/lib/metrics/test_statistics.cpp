// Per-structure statistics: counts, volumes, intensities and centroids in patient coordinates.
#include <gmock/gmock.h>

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
  EXPECT_THAT(statistics_csv_rows("c", s), ::testing::StartsWith("c,1,S,2,8,11.5,0,12,20.5,27,0.25\n"));
  // A normalised image reports the file's intensities through the rescale (x * 379 + 466).
  const auto r = structure_statistics(*labels, *image, g, Rescale{466, 379});
  EXPECT_DOUBLE_EQ(r[0].mean_intensity, (466.0 + (23.0 * 379 + 466)) / 2);
  EXPECT_DOUBLE_EQ(r[18].median_intensity, at(0, 1, 1) * 379.0 + 466);
  EXPECT_THROW(structure_statistics(*labels, *NdArray::make<float>({2, 3, 5}), g),
               std::invalid_argument);
}
