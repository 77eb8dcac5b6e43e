// Reading and writing volumes: the axis convention of spec 1.1 and geometry round trips.
#include <gmock/gmock.h>
#include <itkImageRegionIteratorWithIndex.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include "io/volume_formats.hpp"
#include "io/volume_io.hpp"
#include "io_fixtures.hpp"
#include "spineparse/files.hpp"
#include "test_util.hpp"

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
  for (std::int64_t i = 0; i < arr->numel(); ++i)
    arr->data<std::int16_t>()[i] = static_cast<std::int16_t>(i * 7 - 300);
  Geometry g;
  g.spacing = {0.6875, 0.7, 4.4};
  g.origin = {12.5, -140.25, 33.0};
  g.direction = {0, 0, 1, 1, 0, 0, 0, -1, 0};
  const std::string f = (d / ("x" + GetParam())).string();
  write_volume(f, *arr, g);
  Volume v = read_image(f);
  EXPECT_EQ(v.data->shape(), arr->shape());
  for (std::int64_t i = 0; i < arr->numel(); ++i)
    ASSERT_EQ(v.data->data<float>()[i], arr->data<std::int16_t>()[i]);
  EXPECT_TRUE(v.geometry.same_as(g, 1e-5)) << v.geometry.describe();
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(v.geometry.direction[i], g.direction[i], 1e-6);
  // Writing again from what was read gives the same geometry: nothing drifts.
  write_volume(f, *arr, v.geometry);
  EXPECT_TRUE(read_image(f).geometry.same_as(g, 1e-5));
  // Only the file itself is left (no temporary .nii beside a .nii.gz), and .gz means gzip.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(d.str()),
                          std::filesystem::directory_iterator()),
            1);
  if (GetParam() == ".nii.gz") {
    EXPECT_EQ(spineparse::read_file(f).substr(0, 2), "\x1f\x8b");
  }
}

// Every format the table says is writable.
std::vector<std::string> writable_extensions() {
  std::vector<std::string> out;
  for (const auto& e : spineparse::io::kVolumeExtensions)
    if (e.writable) out.push_back(e.extension);
  return out;
}
INSTANTIATE_TEST_SUITE_P(Formats, RoundTrip, ::testing::ValuesIn(writable_extensions()));

// A .nii.gz is gzip of exactly the .nii ITK writes for the same volume (its header for the
// geometry and type, then the voxels), for every stored type and oblique, flipped geometries.
TEST(VolumeIo, NiftiGzIsItksNiftiGzipped) {
  TempDir d;
  Geometry g;
  g.spacing = {0.6875, 0.7, 4.4};
  g.origin = {12.5, -140.25, 33.0};
  const double c = std::cos(0.3), s = std::sin(0.3);
  g.direction = {0, c, -s, 0, s, c, -1, 0, 0};  // oblique and improper
  for (const DType t : {DType::kUInt8, DType::kInt16, DType::kFloat32}) {
    auto a = t == DType::kUInt8   ? NdArray::make<std::uint8_t>({5, 7, 9})
             : t == DType::kInt16 ? NdArray::make<std::int16_t>({5, 7, 9})
                                  : NdArray::make<float>({5, 7, 9});
    for (std::int64_t i = 0; i < a->numel(); ++i) {
      if (t == DType::kUInt8) a->data<std::uint8_t>()[i] = static_cast<std::uint8_t>(i % 20);
      if (t == DType::kInt16) a->data<std::int16_t>()[i] = static_cast<std::int16_t>(i * 7 - 99);
      if (t == DType::kFloat32) a->data<float>()[i] = 0.25f * static_cast<float>(i) - 3.0f;
    }
    const std::string gz = (d / "a.nii.gz").string(), plain = (d / "a.nii").string();
    write_volume(gz, *a, g);
    write_volume(plain, *a, g);  // ITK's own writer
    gzFile f = gzopen(gz.c_str(), "rb");
    ASSERT_NE(f, nullptr);
    std::string unzipped, buf(1 << 16, '\0');
    for (int n; (n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()))) > 0;)
      unzipped.append(buf.data(), static_cast<std::size_t>(n));
    gzclose(f);
    EXPECT_EQ(unzipped, spineparse::read_file(plain)) << dtype_name(t);
  }
}

// Threads whose first ITK objects are made at the same moment, as a cohort's first cases are
// (synth, the pipeline's readers and writers): ITK 5.2 builds its factories on first use without
// a lock, which corrupted them and hung or crashed the process at exit about one run in 30. Each
// try is a new process (the first use happens once per process): this test's binary again, as
// the child below, which must exit cleanly.
void concurrent_first_itk_use(const std::string& dir) {
  auto a = NdArray::make<std::int16_t>({6, 9, 8});
  for (std::int64_t i = 0; i < a->numel(); ++i)
    a->data<std::int16_t>()[i] = static_cast<std::int16_t>(i);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      ++ready;
      while (ready.load() < 8) std::this_thread::yield();  // all start together
      const std::string path = dir + "/t" + std::to_string(t) + (t % 2 ? ".nii.gz" : ".nrrd");
      write_volume(path, *a, Geometry{});
      read_image(path);
    });
  }
  for (auto& th : threads) th.join();
}

TEST(VolumeIo, ThreadsMakingTheirFirstItkObjectsAtOnceLeaveItWhole) {
  if (const char* dir = std::getenv("SPINEPARSE_FIRST_ITK_USE_DIR")) {
    concurrent_first_itk_use(dir);
    return;
  }
  TempDir d;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  for (int run = 0; run < 40; ++run) {
    const std::string cmd =
        "SPINEPARSE_FIRST_ITK_USE_DIR=" + d.str() + " timeout 30 " + self +
        " --gtest_filter=VolumeIo.ThreadsMakingTheirFirstItkObjectsAtOnceLeaveItWhole"
        " >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "run " << run << " did not exit cleanly";
  }
}

TEST(VolumeIo, LabelsAreCheckedAndStoredAsUint8) {
  TempDir d;
  const std::string f = (d / "m.nii.gz").string();
  write_itk<unsigned char, 3>(f, {4, 4, 2}, [](auto idx) { return (idx[0] + idx[1]) % 20; });
  Volume v = read_labels(f, 19);
  EXPECT_EQ(v.data->dtype(), DType::kUInt8);
  write_itk<unsigned char, 3>(f, {4, 4, 2}, [](auto idx) { return idx[0] == 3 ? 25 : 1; });
  EXPECT_THAT([&] { read_labels(f, 19); }, ::testing::ThrowsMessage<std::runtime_error>(
                                               ::testing::HasSubstr("not a label in 0..19")));
}

TEST(VolumeIo, StemsAndExtensions) {
  EXPECT_EQ(volume_stem("/a/Case12.nii.gz"), "Case12");
  EXPECT_EQ(volume_stem("x.nrrd"), "x");
  EXPECT_TRUE(is_volume_file("a.mha"));
  EXPECT_FALSE(is_volume_file("a.txt"));
  EXPECT_FALSE(is_volume_file("a.png"));
  EXPECT_FALSE(is_volume_file("a.img.gz"));  // the data half of a pair is not a case
  EXPECT_EQ(volume_stem("b.img.gz"), "b");
  // The table is the documentation's list: every listed ending is named in docs/inputs.md.
  const std::string doc =
      spineparse::read_file(spineparse::testing::source_dir() + "/docs/inputs.md");
  for (const auto& e : spineparse::io::kVolumeExtensions) {
    EXPECT_EQ(is_volume_file(std::string("a") + e.extension), e.listed) << e.extension;
    if (e.listed) EXPECT_THAT(doc, ::testing::HasSubstr(std::string("`") + e.extension + "`"));
  }
  EXPECT_EQ(spineparse::io::volume_extensions(true),
            (std::vector<std::string>{".nii.gz", ".nii", ".nrrd", ".mha"}));
}

TEST(VolumeIo, ReadsTheReferenceVolumeWithItsGeometry) {
  const std::string f = spineparse::testing::reference_dir() + "/raw.nii.gz";
  if (!std::filesystem::exists(f)) GTEST_SKIP() << "no ../shared/reference beside the checkout";
  Volume v = read_image(f);
  EXPECT_EQ(v.data->shape(),
            (std::vector<std::int64_t>{12, 64, 128}));  // H x W x D = 64 x 128 x 12
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
    write_itk<float, 3>(f, {8, 10, 3},
                        [](auto i) { return i[0] == 1 && i[1] == 2 ? NAN : 1.0f * i[1]; });
    EXPECT_EQ(scan_nifti(f).non_finite, 3) << ext;
    EXPECT_THAT([&] { read_image(f); }, ::testing::ThrowsMessage<std::runtime_error>(
                                            ::testing::HasSubstr("3 non-finite voxels")))
        << ext;
  }
  const std::string g = (d / "t.nii").string();
  write_itk<short, 3>(g, {8, 10, 3}, [](auto i) { return i[0]; });
  std::filesystem::resize_file(g, 352 + 100);
  EXPECT_THAT(scan_nifti(g).problem, ::testing::HasSubstr("truncated: 100 of 480 data bytes"));
  EXPECT_THAT([&] { read_image(g); },
              ::testing::ThrowsMessage<std::runtime_error>(
                  ::testing::HasSubstr("truncated: 100 of 480 data bytes")));
}

namespace {

void expect_same_volume(const Volume& a, const Volume& b, const std::string& what) {
  ASSERT_EQ(a.data->shape(), b.data->shape()) << what;
  const float* x = a.data->data<float>();
  const float* y = b.data->data<float>();
  std::int64_t differ = 0;
  for (std::int64_t i = 0; i < a.data->numel(); ++i) differ += x[i] != y[i];
  EXPECT_EQ(differ, 0) << what;
  EXPECT_TRUE(a.geometry.same_as(b.geometry, 0.0))
      << what << ": " << a.geometry.describe() << " vs " << b.geometry.describe();
}

// A NIfTI-1 file written byte by byte: int16 voxels v(x, y, z) = 100 z + 10 y + x - 7, in either
// byte order, with a quaternion (identity) transform and optional intensity scaling.
void write_nifti_by_hand(const std::string& path, bool big_endian, float slope, float inter) {
  const std::int16_t H = 5, W = 4, D = 3;
  std::vector<unsigned char> f(352, 0);
  auto put = [&](std::size_t at, const void* v, std::size_t n) {
    std::memcpy(&f[at], v, n);
    if (big_endian) std::reverse(f.begin() + at, f.begin() + at + n);
  };
  auto i16 = [&](std::size_t at, std::int16_t v) { put(at, &v, 2); };
  auto i32 = [&](std::size_t at, std::int32_t v) { put(at, &v, 4); };
  auto f32 = [&](std::size_t at, float v) { put(at, &v, 4); };
  i32(0, 348);
  const std::int16_t dim[8] = {3, H, W, D, 1, 1, 1, 1};
  for (int i = 0; i < 8; ++i) i16(40 + 2 * i, dim[i]);
  i16(70, 4);   // int16
  i16(72, 16);  // bitpix
  const float pixdim[8] = {1, 0.5f, 0.75f, 4.0f, 1, 1, 1, 1};
  for (int i = 0; i < 8; ++i) f32(76 + 4 * i, pixdim[i]);
  f32(108, 352);
  f32(112, slope);
  f32(116, inter);
  i16(252, 1);  // qform_code: scanner coordinates, identity quaternion
  std::memcpy(&f[344], "n+1\0", 4);
  for (std::int16_t z = 0; z < D; ++z)
    for (std::int16_t y = 0; y < W; ++y)
      for (std::int16_t x = 0; x < H; ++x) {
        const std::size_t at = f.size();
        f.resize(at + 2);
        i16(at, static_cast<std::int16_t>(100 * z + 10 * y + x - 7));
      }
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(f.data()), static_cast<std::streamsize>(f.size()));
}

}  // namespace

// Label maps come decoded straight to uint8 (no float copy): the same values as read_image reads,
// for every datatype and byte order, scaled or not; a voxel that is not a label is named.
TEST(VolumeIo, LabelsDecodedAsLabelsEqualTheImagesValues) {
  TempDir d;
  auto label = [](auto i) { return (i[0] + 3 * i[1] + 7 * i[2]) % 20; };
  const std::string u8 = (d / "u8.nii.gz").string(), i16 = (d / "i16.nii").string(),
                    f32 = (d / "f32.nii.gz").string(), big = (d / "scaled_big.nii").string();
  write_itk<std::uint8_t, 3>(u8, {7, 6, 3}, [&](auto i) { return label(i); });
  write_itk<std::int16_t, 3>(i16, {7, 6, 3}, [&](auto i) { return label(i); });
  write_itk<float, 3>(f32, {7, 6, 3}, [&](auto i) { return static_cast<float>(label(i)); });
  write_nifti_by_hand(big, true, 1.0f, 7.0f);  // 100 z + 10 y + x: 0..234
  for (const auto& [f, top] : {std::pair{u8, 19}, {i16, 19}, {f32, 19}, {big, 255}}) {
    const Volume l = read_labels(f, top), v = read_image(f);
    ASSERT_EQ(l.data->dtype(), DType::kUInt8) << f;
    ASSERT_EQ(l.data->shape(), v.data->shape()) << f;
    std::int64_t differ = 0;
    for (std::int64_t k = 0; k < v.data->numel(); ++k)
      differ += static_cast<float>(l.data->data<std::uint8_t>()[k]) != v.data->data<float>()[k];
    EXPECT_EQ(differ, 0) << f;
    EXPECT_TRUE(l.geometry.same_as(v.geometry, 0.0)) << f;
  }
  auto refused = [](const std::string& f, int top, const std::string& what) {
    EXPECT_THAT([&] { read_labels(f, top); },
                ::testing::ThrowsMessage<std::runtime_error>(::testing::HasSubstr(what)))
        << f;
  };
  // The first voxel past 200 in [D, H, W] order: z 2, x 0, y 1.
  refused(big, 200, "voxel value 210.000000 is not a label in 0..200");
  write_itk<float, 3>(f32, {7, 6, 3}, [&](auto i) { return i[0] == 4 ? 3.5f : 2.0f; });
  refused(f32, 19, "voxel value 3.500000 is not a label");
  write_itk<std::int16_t, 3>(i16, {7, 6, 3}, [&](auto i) { return i[1] == 2 ? -1 : 0; });
  refused(i16, 19, "voxel value -1.000000 is not a label");
}

TEST(VolumeIo, NiftiDecodedInOnePassEqualsItksReading) {
  // read_image decodes plain NIfTI voxels from the bytes its integrity scan already read; every
  // datatype and byte order, with or without intensity scaling, must give what ITK's reader gives.
  TempDir d;
  auto value = [](auto i) { return static_cast<double>(i[0] + 10 * i[1] + 50 * i[2]) - 30.0; };
  std::vector<std::string> files;
  auto add = [&](const std::string& name) {
    files.push_back((d / name).string());
    return files.back();
  };
  write_itk<std::uint8_t, 3>(
      add("u8.nii.gz"), {7, 6, 3}, [&](auto i) { return static_cast<std::uint8_t>(value(i) + 40); },
      {}, true);
  write_itk<std::int8_t, 3>(add("i8.nii"), {7, 6, 3},
                            [&](auto i) { return static_cast<std::int8_t>(value(i) / 2); });
  write_itk<std::int16_t, 3>(add("i16.nii.gz"), {7, 6, 3},
                             [&](auto i) { return static_cast<std::int16_t>(value(i) * 3); });
  write_itk<std::uint16_t, 3>(add("u16.nii.gz"), {7, 6, 3}, [&](auto i) {
    return static_cast<std::uint16_t>(value(i) * 100 + 5000);
  });
  write_itk<std::int32_t, 3>(add("i32.nii.gz"), {7, 6, 3},
                             [&](auto i) { return static_cast<std::int32_t>(value(i) * 1000); });
  write_itk<std::uint32_t, 3>(add("u32.nii"), {7, 6, 3}, [&](auto i) {
    return static_cast<std::uint32_t>(value(i) * 1000 + 100000);
  });
  write_itk<float, 3>(
      add("f32.nii.gz"), {7, 6, 3}, [&](auto i) { return static_cast<float>(value(i) / 7.0); },
      {0.4, 0.4, 4.4}, true);
  write_itk<double, 3>(add("f64.nii.gz"), {7, 6, 3}, [&](auto i) { return value(i) / 3.0; });
  // Wider than the decoder's 32 x 32 tiles in both directions, with partial tiles.
  write_itk<std::int16_t, 3>(add("i16_wide.nii.gz"), {70, 45, 3},
                             [&](auto i) { return static_cast<std::int16_t>(value(i) * 3); });
  write_nifti_by_hand(add("little.nii"), false, 0, 0);
  write_nifti_by_hand(add("big.nii"), true, 0, 0);
  write_nifti_by_hand(add("scaled_big.nii"), true, 2.0f, 5.0f);
  for (const auto& f : files) {
    EXPECT_EQ(scan_nifti(f).problem, "") << f;
    expect_same_volume(read_image(f), read_image_with_itk(f), f);
  }
  // The byte orders agree with each other and with the values written; the scaled file is
  // 2 v + 5.
  auto little = read_image((d / "little.nii").string()), big = read_image((d / "big.nii").string());
  auto scaled = read_image((d / "scaled_big.nii").string());
  const auto& a = *little.data;
  EXPECT_EQ(a.shape(), (std::vector<std::int64_t>{3, 5, 4}));
  for (std::int64_t z = 0; z < 3; ++z)
    for (std::int64_t x = 0; x < 5; ++x)
      for (std::int64_t y = 0; y < 4; ++y) {
        const std::int64_t i = (z * 5 + x) * 4 + y;
        const float v = static_cast<float>(100 * z + 10 * y + x - 7);
        ASSERT_EQ(a.data<float>()[i], v);
        ASSERT_EQ(big.data->data<float>()[i], v);
        ASSERT_EQ(scaled.data->data<float>()[i], 2 * v + 5);
      }
  EXPECT_DOUBLE_EQ(big.geometry.spacing[2], 4.0);
  // Labels: a uint8 mask wider than a tile reads as ITK reads it, uint8; one above max_label
  // comes back as float (which the caller refuses, naming the value).
  const std::string mask = (d / "mask_wide.nii.gz").string();
  write_itk<std::uint8_t, 3>(mask, {70, 45, 3},
                             [](auto i) { return static_cast<std::uint8_t>((i[0] + i[1]) % 20); });
  const Volume labels = read_labels(mask, 19), itk = read_image_with_itk(mask);
  ASSERT_EQ(labels.data->dtype(), DType::kUInt8);
  ASSERT_EQ(labels.data->shape(), itk.data->shape());
  for (std::int64_t i = 0; i < labels.data->numel(); ++i)
    ASSERT_EQ(labels.data->data<std::uint8_t>()[i], itk.data->data<float>()[i]) << i;
  EXPECT_THROW(read_labels(mask, 18), std::runtime_error);
}
