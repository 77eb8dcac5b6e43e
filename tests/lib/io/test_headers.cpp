// Header checks (io/header.hpp) field by field, and NIfTI-2 / NIfTI-1 agreement: the geometry
// the checks derive must be what ITK reads from the same NIfTI-1 header.
#include <gmock/gmock.h>

#include <cmath>
#include <filesystem>

#include "corpus/volume_bytes.hpp"
#include "io/header.hpp"
#include "io/volume_io.hpp"
#include "test_util.hpp"

using namespace spineparse;
using namespace spineparse::io;
using spineparse::testing::Bytes;
using spineparse::testing::TempDir;
using ::testing::HasSubstr;
namespace fs = std::filesystem;
namespace vb = spineparse::testing;

namespace {

std::string nifti1(const Bytes& h, int H = 6, int W = 5, int D = 4) {
  return h.str() + vb::voxel_bytes(H, W, D, true, h.big_endian);
}

// Sets a rotation about z by `deg` in the qform (quatern_d) and/or the sform.
void rotate(Bytes& h, double deg, bool qform, bool sform) {
  const double a = deg * M_PI / 180;
  if (qform) h.set<float>(264, static_cast<float>(std::sin(a / 2)));
  if (sform) {
    const float sp[3] = {0.5f, 0.75f, 4.0f};
    const double r[3][3] = {
        {std::cos(a), -std::sin(a), 0}, {std::sin(a), std::cos(a), 0}, {0, 0, 1}};
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j)
        h.set<float>(280 + 16 * i + 4 * j, static_cast<float>(r[i][j] * sp[j]));
  }
}

}  // namespace

TEST(Headers, GeometryFromTheHeaderEqualsItksForNifti1) {
  TempDir d;
  struct Variant {
    const char* name;
    double deg;
    int qcode, scode;
    bool rot_q, rot_s;
  } variants[] = {
      {"both_same", 30, 1, 1, true, true},      {"qform_only", 30, 1, 0, true, false},
      {"sform_only", 30, 0, 2, false, true},    {"both_identity", 0, 1, 1, false, false},
      {"sform_differs", 30, 1, 1, false, true}, {"qform_differs", 30, 1, 1, true, false}};
  for (const auto& v : variants) {
    Bytes h = vb::nifti1_header(6, 5, 4);
    rotate(h, v.deg, v.rot_q, v.rot_s);
    h.set<std::int16_t>(252, static_cast<std::int16_t>(v.qcode));
    h.set<std::int16_t>(254, static_cast<std::int16_t>(v.scode));
    const std::string f = (d / (std::string(v.name) + ".nii")).string();
    vb::write_bytes(f, nifti1(h));
    const Geometry mine = check_volume_file(f, {}).geometry;
    const Geometry itk = read_image_with_itk(f).geometry;
    EXPECT_TRUE(mine.same_as(itk, 1e-5))
        << v.name << ": " << mine.describe() << " vs ITK " << itk.describe();
  }
}

TEST(Headers, Nifti2ReadsLikeTheSameNifti1InBothByteOrders) {
  TempDir d;
  for (bool big : {false, true}) {
    Bytes h1 = vb::nifti1_header(6, 5, 4, true, big);
    Bytes h2 = vb::nifti2_header(6, 5, 4, true, big);
    rotate(h1, 20, true, true);
    const double a = 20 * M_PI / 180;
    h2.set<double>(368, std::sin(a / 2));
    const double sp[3] = {0.5, 0.75, 4.0};
    const double r[3][3] = {
        {std::cos(a), -std::sin(a), 0}, {std::sin(a), std::cos(a), 0}, {0, 0, 1}};
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) h2.set<double>(400 + 32 * i + 8 * j, r[i][j] * sp[j]);
    const std::string f1 = (d / "v1.nii").string(), f2 = (d / "v2.nii.gz").string();
    vb::write_bytes(f1, nifti1(h1));
    vb::write_bytes(f2, vb::gzip(h2.str() + vb::voxel_bytes(6, 5, 4, true, big)));
    const Volume a1 = read_image(f1), a2 = read_image(f2);
    EXPECT_EQ(check_volume_file(f2, {}).format, "nifti2");
    ASSERT_EQ(a1.data->shape(), a2.data->shape());
    for (std::int64_t i = 0; i < a1.data->numel(); ++i)
      ASSERT_EQ(a1.data->data<float>()[i], a2.data->data<float>()[i]) << i;
    EXPECT_TRUE(a1.geometry.same_as(a2.geometry, 1e-5))
        << a1.geometry.describe() << " vs " << a2.geometry.describe();
  }
}

TEST(Headers, EachLyingNifti1FieldIsRefusedWithItsName) {
  struct Case {
    const char* what;
    std::size_t at;
    int type;  // 0 int16, 1 float, 2 int32
    double value;
    const char* message;
  } cases[] = {
      {"dim0", 40, 0, 0, "dim[0] is 0"},
      {"dim3", 46, 0, 0, "dim[3] is 0"},
      {"dim1", 42, 0, -4, "dim[1] is -4"},
      {"datatype", 70, 0, 3, "datatype 3"},
      {"bitpix", 72, 0, 8, "bitpix is 8"},
      {"voxoff0", 108, 1, 0, "vox_offset 0"},
      {"voxoffnan", 108, 1, NAN, "vox_offset nan"},
      {"voxoffbig", 108, 1, 1e30, "vox_offset 1e+30"},
      {"pixdim0", 80, 1, 0, "pixdim[1] is 0"},
      {"pixdimnan", 84, 1, NAN, "pixdim[2] is nan"},
      {"srownan", 280, 1, NAN, "sform"},
      {"quatnan", 256, 1, NAN, "qform"},
      {"qoffinf", 268, 1, INFINITY, "qform"},
      {"quatlong", 256, 1, 2.0, "longer than 1"},
      {"slope", 112, 1, NAN, "scl_slope"},
      {"qcode", 252, 0, 77, "transform codes"},
  };
  for (const auto& c : cases) {
    Bytes h = vb::nifti1_header(6, 5, 4);
    if (c.type == 0) h.set<std::int16_t>(c.at, static_cast<std::int16_t>(c.value));
    if (c.type == 1) h.set<float>(c.at, static_cast<float>(c.value));
    const std::string bytes = nifti1(h);
    EXPECT_THAT([&] { parse_nifti_header(h.b.data(), h.b.size(), c.what); },
                ::testing::ThrowsMessage<std::runtime_error>(HasSubstr(c.message)))
        << c.what;
  }
}

TEST(Headers, SizesAreOverflowCheckedAndLimitedBeforeAllocation) {
  TempDir d;
  Bytes h = vb::nifti1_header(6, 5, 4);
  for (int i = 1; i <= 3; ++i) h.set<std::int16_t>(40 + 2 * i, 32767);
  const std::string f = (d / "huge.nii").string();
  vb::write_bytes(f, h.str());
  EXPECT_THAT(
      [&] {
        read_image(f, {1 << 20, 0});
      },
      ::testing::ThrowsMessage<std::runtime_error>(
          HasSubstr("huge.nii: the header claims 35181150961663 voxels")));
  Bytes h2 = vb::nifti2_header(6, 5, 4);
  for (int i = 1; i <= 3; ++i) h2.set<std::int64_t>(16 + 8 * i, std::int64_t{1} << 40);
  EXPECT_THAT([&] { parse_nifti_header(h2.b.data(), h2.b.size(), "n2"); },
              ::testing::ThrowsMessage<std::runtime_error>(HasSubstr("overflow")));
  EXPECT_EQ(checked_mul(std::int64_t{1} << 62, 4), -1);
  EXPECT_EQ(checked_mul(-1, 4), -1);
}

TEST(Headers, DetachedDataMustStayBesideItsHeader) {
  TempDir d;
  const std::string nhdr =
      "NRRD0004\ntype: float\ndimension: 3\nsizes: 6 5 4\nencoding: raw\ndata file: "
      "/etc/passwd\n\n";
  const auto refused =
      ::testing::ThrowsMessage<std::runtime_error>(HasSubstr("outside the header's folder"));
  EXPECT_THAT([&] { parse_nrrd_header(nhdr, "x.nhdr", d.str()); }, refused);
  const std::string mhd =
      "NDims = 3\nDimSize = 6 5 4\nElementType = MET_FLOAT\n"
      "ElementDataFile = ../../etc/passwd\n";
  EXPECT_THAT([&] { parse_metaimage_header(mhd, "x.mhd", d.str()); }, refused);
}

TEST(Headers, ShearedSformFallsBackToTheQformLikeItkWithAWarning) {
  TempDir d;
  Bytes h = vb::nifti1_header(6, 5, 4);
  h.set<float>(284, 0.3f);  // srow_x[1]: shear
  const std::string f = (d / "shear.nii").string();
  vb::write_bytes(f, nifti1(h));
  const Geometry mine = check_volume_file(f, {}).geometry;
  const Geometry itk = read_image_with_itk(f).geometry;
  EXPECT_TRUE(mine.same_as(itk, 1e-5)) << mine.describe() << " vs ITK " << itk.describe();
  EXPECT_THAT(check_volume_file(f, {}).warnings,
              ::testing::ElementsAre(HasSubstr("not orthogonal (shear); the qform is used")));
}
