// The viewer page's volumes and HTML: axes reduced to the limit with the same physical extent,
// labels and differences sampled from the full grid, the measurements drawn where they are, the
// page's text escaped and its template filled once.
#include <gmock/gmock.h>

#include "metrics/measure.hpp"
#include "metrics/viewer_page.hpp"

using namespace spineparse;
using namespace spineparse::metrics;
using ::testing::HasSubstr;

TEST(ViewerPage, LongAxesAreReducedKeepingTheVolumesExtent) {
  const std::int64_t D = 10, H = 600, W = 300;
  NdArray image(DType::kFloat32, {D, H, W});
  auto labels = NdArray::make<std::uint8_t>({D, H, W}), mask = NdArray::make<std::uint8_t>({D, H, W});
  for (std::int64_t i = 0; i < image.numel(); ++i) {
    image.data<float>()[i] = static_cast<float>(i % 97);
    const std::int64_t h = (i / W) % H;
    labels->data<std::uint8_t>()[i] = h >= 300 ? 4 : 0;            // the lower half: L3
    mask->data<std::uint8_t>()[i] = h >= 150 && h < 450 ? 4 : 0;  // shifted by a quarter
  }
  Geometry g;
  g.spacing = {0.5, 0.4, 4.0};  // columns H, W, D
  g.origin = {10, 20, 30};
  const ViewerVolumes v = viewer_volumes(image, *labels, mask.get(), g, 256);
  EXPECT_EQ(v.factor, (std::array<std::int64_t, 3>{1, 3, 2}));
  ASSERT_EQ(v.labels->shape(), (std::vector<std::int64_t>{10, 200, 150}));
  EXPECT_DOUBLE_EQ(v.geometry.spacing[0], 1.5);
  EXPECT_DOUBLE_EQ(v.geometry.spacing[1], 0.8);
  EXPECT_DOUBLE_EQ(v.geometry.spacing[2], 4.0);
  EXPECT_DOUBLE_EQ(v.geometry.origin[0], 10 + 0.5 * 1);  // the centre voxel of each block of 3
  EXPECT_DOUBLE_EQ(v.geometry.origin[1], 20 + 0.4 * 1);  // of 2: index 1
  EXPECT_DOUBLE_EQ(v.geometry.origin[2], 30);
  const auto* l = v.labels->data<std::uint8_t>();
  const auto* d = v.diff->data<std::uint8_t>();
  auto at = [&](std::int64_t h) { return (5 * 200 + h) * 150 + 70; };
  EXPECT_EQ(l[at(99)], 0);  // block rows 297-299
  EXPECT_EQ(l[at(100)], 4);
  EXPECT_EQ(d[at(60)], 1);   // truth L3, prediction none: missed
  EXPECT_EQ(d[at(120)], 0);  // both L3
  EXPECT_EQ(d[at(160)], 2);  // prediction L3, truth background: spurious
  EXPECT_EQ(v.lines, nullptr);
}

// The image is the mean grey (0.5th-99.5th percentile window) of each block, rounded half up,
// the last block of an axis shorter where the factor does not divide it.
TEST(ViewerPage, TheImageIsTheMeanGreyOfEachBlockShortBlocksToo) {
  // max_side 3: factors 1, 2, 3; blocks of H 2, 2, 1 rows, of W 3, 3, 1 columns
  const std::int64_t D = 2, H = 5, W = 7;
  NdArray image(DType::kFloat32, {D, H, W});
  for (std::int64_t i = 0; i < image.numel(); ++i)
    image.data<float>()[i] = static_cast<float>((i * 37) % 70);  // 0..69, every value once
  const auto labels = NdArray::make<std::uint8_t>({D, H, W});
  const ViewerVolumes v = viewer_volumes(image, *labels, nullptr, Geometry{}, 3);
  ASSERT_EQ(v.image->shape(), (std::vector<std::int64_t>{2, 3, 3}));
  auto grey = [&](std::int64_t d, std::int64_t h, std::int64_t w) {  // 70 samples: lo 0, hi 69
    return static_cast<int>(image.data<float>()[(d * H + h) * W + w] / 69.0f * 255);
  };
  for (std::int64_t d = 0; d < 2; ++d)
    for (std::int64_t bh = 0; bh < 3; ++bh)
      for (std::int64_t bw = 0; bw < 3; ++bw) {
        int sum = 0, count = 0;
        for (std::int64_t h = 2 * bh; h < std::min(H, 2 * bh + 2); ++h)
          for (std::int64_t w = 3 * bw; w < std::min(W, 3 * bw + 3); ++w)
            sum += grey(d, h, w), ++count;
        EXPECT_EQ(v.image->data<std::uint8_t>()[(d * 3 + bh) * 3 + bw],
                  static_cast<int>(static_cast<double>(sum) / count + 0.5))
            << "block " << d << "," << bh << "," << bw;
      }
}

TEST(ViewerPage, MeasurementsAreDrawnAtTheirEndplates) {
  // A box of L3 between two flat endplates at z 10 and 35 mm, 30 mm deep (y 5-35), on a 1 mm grid.
  const std::int64_t D = 50, H = 20, W = 40;  // z, x, y
  NdArray image(DType::kFloat32, {D, H, W});
  auto labels = NdArray::make<std::uint8_t>({D, H, W});
  for (std::int64_t z = 10; z < 35; ++z)
    for (std::int64_t x = 2; x < 18; ++x)
      for (std::int64_t y = 5; y < 35; ++y) labels->data<std::uint8_t>()[(z * H + x) * W + y] = 4;
  Geometry g;
  g.spacing = {1, 1, 1};
  const CaseMeasurement m = measure_case("box", *labels, g);
  ASSERT_TRUE(m.level(4).superior.valid);
  const ViewerVolumes v = viewer_volumes(image, *labels, nullptr, g, 256, &m);
  ASSERT_NE(v.lines, nullptr);
  const auto* p = v.lines->data<std::uint8_t>();
  int top = 0, bottom = 0, heights = 0, elsewhere = 0;
  for (std::int64_t z = 0; z < D; ++z)
    for (std::int64_t x = 0; x < H; ++x)
      for (std::int64_t y = 0; y < W; ++y) {
        const int val = p[(z * H + x) * W + y];
        if (val == 1 && (z == 34 || z == 35)) ++top;  // the surface: between the two
        else if (val == 1 && (z == 9 || z == 10)) ++bottom;
        else if (val == 2 && z >= 9 && z <= 35) ++heights;
        else if (val) ++elsewhere;
      }
  EXPECT_GE(top, 5 * 28);  // the line across 5 sagittal planes (the centre one +- 2)
  EXPECT_GE(bottom, 5 * 28);
  EXPECT_GE(heights, 3 * 5 * 20);  // three heights
  EXPECT_LE(elsewhere, top / 10);
}

TEST(ViewerPage, TheCaseIdIsTextAndTheTemplateIsFilledOnce) {
  ViewerPage page;
  page.id = "<b>@MR@</b>";
  page.mr_nii_gz = "mr-bytes";
  page.labels_nii_gz = "labels";
  const std::string html = viewer_page_html(page);
  EXPECT_THAT(html, HasSubstr("<title>&lt;b&gt;@MR@&lt;/b&gt; - spineparse viewer</title>"));
  EXPECT_THAT(html, HasSubstr("const CASE = \"<b>@MR@<\\/b>\""));
  EXPECT_THAT(html, HasSubstr("const MR = \"bXItYnl0ZXM=\""));  // base64 of the bytes
  EXPECT_THAT(html, HasSubstr("DIFF = null, LINES = null"));
  EXPECT_THAT(html, HasSubstr("<script src=\"niivue.umd.js\"></script>"));
}
