// Reading and writing volumes: the axis convention of spec 1.1 and geometry round trips.
#include <gmock/gmock.h>
#include <itkImageRegionIteratorWithIndex.h>

#include <cmath>

#include "io_fixtures.hpp"
#include "test_util.hpp"
#include "volume_io.hpp"

using namespace spineparse;
using namespace spineparse::io;
using spineparse::testing::TempDir;
using spineparse::testing::write_itk;

TEST(VolumeIo, FileAxesHWDBecomeArrayDHW) {
  TempDir d;
  const std::string f = (d / "a.nii.gz").string();
  // ITK index (x, y, z) = array axes (H, W, D) of the file.
  write_itk<short, 3>(f, {5, 7, 3}, [](auto idx) { return 100 * idx[0] + 10 * idx[1] + idx[2]; });
  Volume v = read_image(f);
  ASSERT_EQ(v.data->shape(), (std::vector<std::int64_t>{3, 5, 7}));
  const float* x = v.data->data<float>();
  for (int dd = 0; dd < 3; ++dd)
    for (int h = 0; h < 5; ++h)
      for (int w = 0; w < 7; ++w) ASSERT_EQ(x[(dd * 5 + h) * 7 + w], 100 * h + 10 * w + dd);
}

class RoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(RoundTrip, KeepsValuesAndGeometry) {
  TempDir d;
  auto arr = NdArray::make<std::int16_t>({4, 6, 9});
  for (std::int64_t i = 0; i < arr->numel(); ++i) arr->data<std::int16_t>()[i] = static_cast<std::int16_t>(i * 7 - 300);
  Geometry g;
  g.spacing = {0.6875, 0.7, 4.4};
  g.origin = {12.5, -140.25, 33.0};
  g.direction = {0, 0, 1, 1, 0, 0, 0, -1, 0};
  const std::string f = (d / ("x" + GetParam())).string();
  write_volume(f, *arr, g);
  Volume v = read_image(f);
  EXPECT_EQ(v.data->shape(), arr->shape());
  for (std::int64_t i = 0; i < arr->numel(); ++i) ASSERT_EQ(v.data->data<float>()[i], arr->data<std::int16_t>()[i]);
  EXPECT_TRUE(v.geometry.same_as(g, 1e-5)) << v.geometry.describe();
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(v.geometry.direction[i], g.direction[i], 1e-6);
  // Writing again from what was read gives the same geometry: nothing drifts.
  write_volume(f, *arr, v.geometry);
  EXPECT_TRUE(read_image(f).geometry.same_as(g, 1e-5));
}

INSTANTIATE_TEST_SUITE_P(Formats, RoundTrip, ::testing::Values(".nii.gz", ".nii", ".nrrd", ".mha"));

TEST(VolumeIo, LabelsAreCheckedAndStoredAsUint8) {
  TempDir d;
  const std::string f = (d / "m.nii.gz").string();
  write_itk<unsigned char, 3>(f, {4, 4, 2}, [](auto idx) { return (idx[0] + idx[1]) % 20; });
  Volume v = read_labels(f, 19);
  EXPECT_EQ(v.data->dtype(), DType::kUInt8);
  write_itk<unsigned char, 3>(f, {4, 4, 2}, [](auto idx) { return idx[0] == 3 ? 25 : 1; });
  EXPECT_THAT([&] { read_labels(f, 19); }, ::testing::ThrowsMessage<std::runtime_error>(::testing::HasSubstr("not a label in 0..19")));
}

TEST(VolumeIo, StemsAndExtensions) {
  EXPECT_EQ(volume_stem("/a/Case12.nii.gz"), "Case12");
  EXPECT_EQ(volume_stem("x.nrrd"), "x");
  EXPECT_TRUE(is_volume_file("a.mha"));
  EXPECT_FALSE(is_volume_file("a.txt"));
  EXPECT_FALSE(is_volume_file("a.png"));
}

TEST(VolumeIo, ReadsTheReferenceVolumeWithItsGeometry) {
  const std::string f = spineparse::testing::reference_dir() + "/raw.nii.gz";
  if (!std::filesystem::exists(f)) GTEST_SKIP() << "no ../shared/reference beside the checkout";
  Volume v = read_image(f);
  EXPECT_EQ(v.data->shape(), (std::vector<std::int64_t>{12, 64, 128}));  // H x W x D = 64 x 128 x 12
  EXPECT_NEAR(v.geometry.spacing[0], 0.6875, 1e-6);
  EXPECT_NEAR(v.geometry.spacing[2], 4.4, 1e-5);
  EXPECT_EQ(v.info.component_type, "short");
}
TEST(VolumeIo, NonFiniteVoxelsAndTruncationAreFoundInNifti) {
  // ITK's NIfTI reader turns NaN into numbers and reads truncated files without complaint; the
  // reader checks the stored data itself.
  TempDir d;
  for (const char* ext : {".nii.gz", ".nii"}) {
    const std::string f = (d / (std::string("n") + ext)).string();
    write_itk<float, 3>(f, {8, 10, 3}, [](auto i) { return i[0] == 1 && i[1] == 2 ? NAN : 1.0f * i[1]; });
    EXPECT_EQ(scan_nifti(f).non_finite, 3) << ext;
    EXPECT_THAT([&] { read_image(f); }, ::testing::ThrowsMessage<std::runtime_error>(::testing::HasSubstr("3 non-finite voxels"))) << ext;
  }
  const std::string g = (d / "t.nii").string();
  write_itk<short, 3>(g, {8, 10, 3}, [](auto i) { return i[0]; });
  std::filesystem::resize_file(g, 352 + 100);
  auto s = scan_nifti(g);
  EXPECT_EQ(s.data_bytes_expected, 480);
  EXPECT_EQ(s.data_bytes_found, 100);
  EXPECT_THAT([&] { read_image(g); }, ::testing::ThrowsMessage<std::runtime_error>(::testing::HasSubstr("truncated: 100 of 480 data bytes")));
}
