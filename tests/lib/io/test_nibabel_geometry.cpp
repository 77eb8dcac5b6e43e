// NIfTI-1 files as nibabel writes them are read with nibabel's own geometry: for the 48 axis
// orientations x {sform only (codes 1-4), qform only, both} and oblique rotations, every corner
// voxel lies where nib.load(f).affine puts it, and every voxel holds what nibabel wrote.
// The files are written at test time by nibabel_orientations.py with Debian's python3-nibabel;
// without it the test skips, unless SPINEPARSE_NIBABEL_TESTS=required (scripts/test).
#include <gmock/gmock.h>

#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "io/volume_io.hpp"
#include "spineparse/files.hpp"
#include "test_util.hpp"

namespace {
namespace fs = std::filesystem;
using spineparse::testing::TempDir;

bool required() {
  const char* v = std::getenv("SPINEPARSE_NIBABEL_TESTS");
  return v && std::string(v) == "required";
}

// World position (RAS, mm) of file voxel (i, j, k) from the reader's geometry (LPS).
std::array<double, 3> ras_of(const spineparse::Geometry& g, const std::array<double, 3>& ijk) {
  std::array<double, 3> lps{};
  for (int r = 0; r < 3; ++r) {
    lps[r] = g.origin[r];
    for (int c = 0; c < 3; ++c) lps[r] += g.direction[r * 3 + c] * g.spacing[c] * ijk[c];
  }
  return {-lps[0], -lps[1], lps[2]};
}

TEST(NibabelGeometry, EveryOrientationAndTransformCodeReadsAsNibabelSeesIt) {
  TempDir d;
  const std::string script =
      spineparse::testing::source_dir() + "/tests/lib/io/nibabel_orientations.py";
  const int rc =
      std::system(("/usr/bin/python3 -c 'import nibabel' 2>/dev/null && /usr/bin/python3 " +
                   script + " " + d.str() + " >/dev/null")
                      .c_str());
  if (rc != 0) {
    if (required())
      FAIL() << "python3-nibabel is missing or the script failed: scripts/setup --test installs it";
    GTEST_SKIP() << "python3-nibabel is not installed (scripts/setup --test installs it)";
  }
  const auto manifest =
      nlohmann::json::parse(spineparse::read_file((d / "manifest.json").string()));
  ASSERT_GE(manifest.size(), 48u * 9u);
  int checked = 0;
  for (const auto& e : manifest) {
    const std::string file = e["file"];
    spineparse::io::Volume v;
    try {
      v = spineparse::io::read_image((d / file).string());
    } catch (const std::exception& ex) {
      ADD_FAILURE() << file << ": " << ex.what();
      continue;
    }
    const auto& shape = e["shape"];
    const std::int64_t H = shape[0], W = shape[1], D = shape[2];
    ASSERT_EQ(v.data->shape(), (std::vector<std::int64_t>{D, H, W})) << file;
    const float* x = v.data->data<float>();
    bool voxels_ok = true;
    for (std::int64_t k = 0; k < D && voxels_ok; ++k)
      for (std::int64_t i = 0; i < H && voxels_ok; ++i)
        for (std::int64_t j = 0; j < W && voxels_ok; ++j)
          voxels_ok = x[(k * H + i) * W + j] == static_cast<float>(i + 100 * j + 10000 * k);
    EXPECT_TRUE(voxels_ok) << file << ": voxel values are not in nibabel's (i, j, k) order";
    // A qform stores its rotation as a float32 quaternion. For rotations of about 180 degrees
    // (a = sqrt(1 - b^2 - c^2 - d^2) near 0) NIfTI's reference code, ITK and we take a = 0, while
    // nibabel keeps the float32 remainder (about 1e-4): the two rotations differ by about 1e-4
    // rad, 4 um at these corners. The sform is stored as it is: no such difference.
    const double tolerance = e["sform_code"].get<int>() > 0 ? 1e-4 : 1e-2;
    const auto& a = e["affine"];
    for (int corner = 0; corner < 8; ++corner) {
      const std::array<double, 3> ijk{(corner & 1) ? H - 1.0 : 0.0, (corner & 2) ? W - 1.0 : 0.0,
                                      (corner & 4) ? D - 1.0 : 0.0};
      const auto got = ras_of(v.geometry, ijk);
      for (int r = 0; r < 3; ++r) {
        double want = a[r][3].get<double>();
        for (int c = 0; c < 3; ++c) want += a[r][c].get<double>() * ijk[c];
        EXPECT_NEAR(got[r], want, tolerance) << file << " corner " << corner << " axis " << r;
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(manifest.size()));
}

}  // namespace
