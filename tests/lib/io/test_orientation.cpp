// Orientation: axis codes from geometry, and exact reorientation of volumes and geometry.
#include <gmock/gmock.h>

#include <cmath>
#include <cstring>
#include <random>

#include "io/orientation.hpp"

using namespace spineparse;
using namespace spineparse::io;

namespace {

// The synthetic cohort's geometry (the training data's layout): i posterior, j inferior, k left.
Geometry pil() {
  Geometry g;
  g.spacing = {0.5, 0.6, 4.0};
  g.origin = {10, -180, -20};
  g.direction = {0, 0, 1, 1, 0, 0, 0, -1, 0};
  return g;
}

std::array<double, 3> world(const Geometry& g, const std::array<std::int64_t, 3>& ijk) {
  std::array<double, 3> p = g.origin;
  for (std::size_t w = 0; w < 3; ++w)
    for (std::size_t a = 0; a < 3; ++a)
      p[w] += g.direction[w * 3 + a] * g.spacing[a] * static_cast<double>(ijk[a]);
  return p;
}

std::vector<std::string> all_codes() {
  std::vector<std::string> out;
  const std::string axes[3] = {"RL", "AP", "SI"};
  int perm[3] = {0, 1, 2};
  do {
    for (int s = 0; s < 8; ++s) {
      std::string c;
      for (int t = 0; t < 3; ++t) c += axes[perm[t]][(s >> t) & 1];
      out.push_back(c);
    }
  } while (std::next_permutation(perm, perm + 3));
  return out;
}

}  // namespace

TEST(Orientation, AxisCodesOfKnownGeometries) {
  EXPECT_EQ(axis_codes(pil()), "PIL");
  EXPECT_EQ(axis_codes(Geometry{}), "LPS");  // ITK's identity direction is LPS
  Geometry ras;
  ras.direction = {-1, 0, 0, 0, -1, 0, 0, 0, 1};
  EXPECT_EQ(axis_codes(ras), "RAS");
  // Oblique by 30 degrees about the k axis: still the closest codes.
  Geometry ob = pil();
  const double c = std::cos(0.5236), s = std::sin(0.5236);
  // columns i, j rotated within their plane
  ob.direction = {0, 0, 1, c, s, 0, s, -c, 0};
  EXPECT_EQ(axis_codes(ob), "PIL");
  Geometry singular = pil();
  singular.direction = {0, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_THROW(axis_codes(singular), std::invalid_argument);
}

TEST(Orientation, ValidCodes) {
  EXPECT_TRUE(valid_axis_codes("PIL"));
  EXPECT_TRUE(valid_axis_codes("RAS"));
  std::string why;
  EXPECT_FALSE(valid_axis_codes("PPL", &why));
  EXPECT_THAT(why, ::testing::HasSubstr("'PPL'"));
  EXPECT_FALSE(valid_axis_codes("PI", &why));
  EXPECT_FALSE(valid_axis_codes("XYZ", &why));
  EXPECT_THROW(plan_reorientation("PIL", "RAX"), std::invalid_argument);
  EXPECT_EQ(all_codes().size(), 48u);
}

// Every orientation: each voxel keeps its value and its place in space, the new geometry has
// the target codes, and the inverse gives back the very same array.
TEST(Orientation, ReorientationIsExactAndInvertibleForAll48) {
  const Geometry g = pil();
  const std::array<std::int64_t, 3> ijk{5, 7, 3};              // sizes along i, j, k
  auto a = NdArray::make<float>({2, ijk[2], ijk[0], ijk[1]});  // [C, D, H, W]
  for (std::int64_t n = 0; n < a->numel(); ++n) a->data<float>()[n] = static_cast<float>(n);
  std::mt19937 rng(1);
  for (const auto& to : all_codes()) {
    const Reorientation r = plan_reorientation("PIL", to);
    const auto b = reorient(*a, r);
    const Geometry gb = reorient(g, ijk, r);
    EXPECT_EQ(axis_codes(gb), to);
    const std::array<std::int64_t, 3> out{b->dim(2), b->dim(3), b->dim(1)};
    for (int trial = 0; trial < 20; ++trial) {
      auto pick = [&](std::int64_t n) {
        return static_cast<std::int64_t>(rng() % static_cast<unsigned>(n));
      };
      const std::array<std::int64_t, 3> t{pick(out[0]), pick(out[1]), pick(out[2])};
      std::array<std::int64_t, 3> s{};
      for (int ax = 0; ax < 3; ++ax) {
        const auto src = static_cast<std::size_t>(r.source[ax]);
        s[src] = r.flip[ax] ? ijk[src] - 1 - t[ax] : t[ax];
      }
      const auto pa = world(g, s), pb = world(gb, t);
      for (int w = 0; w < 3; ++w) EXPECT_NEAR(pa[w], pb[w], 1e-9) << to;
      const std::int64_t c = trial % 2;
      const float va = a->data<float>()[((c * ijk[2] + s[2]) * ijk[0] + s[0]) * ijk[1] + s[1]];
      const float vb = b->data<float>()[((c * out[2] + t[2]) * out[0] + t[0]) * out[1] + t[1]];
      EXPECT_EQ(va, vb) << to;
    }
    const auto back = reorient(*b, r.inverse());
    ASSERT_EQ(back->shape(), a->shape());
    EXPECT_EQ(std::memcmp(back->raw(), a->raw(), a->nbytes()), 0) << to;
    EXPECT_TRUE(reorient(gb, out, r.inverse()).same_as(g, 1e-9)) << to;
  }
  EXPECT_EQ(plan_reorientation("PIL", "PIL").describe(), "none");
}

TEST(Orientation, PlanesOfSliceAxes) {
  EXPECT_EQ(plane_of('L'), "sagittal");
  EXPECT_EQ(plane_of('A'), "coronal");
  EXPECT_EQ(plane_of('I'), "axial");
  EXPECT_EQ(axis_along("RAS", 'L'), 0);
  EXPECT_EQ(axis_along("PIL", 'S'), 1);
}

// PatientToIndex inverts origin + direction * diag(spacing) * index, oblique grids included, and
// refuses a singular one.
TEST(Orientation, PatientToIndexInvertsTheGrid) {
  Geometry g;
  const double c = std::cos(0.3), s = std::sin(0.3);
  g.direction = {c, 0, s, 0, -1, 0, -s, 0, c};  // rotated about y, the second axis flipped
  g.spacing = {0.5, 0.8, 4.0};
  g.origin = {-12, 30, 7};
  const PatientToIndex to_index(g);
  const std::array<double, 3> idx = {17.25, -3.5, 6.0};
  std::array<double, 3> p{};
  for (int r = 0; r < 3; ++r) {
    p[r] = g.origin[r];
    for (int a = 0; a < 3; ++a) p[r] += g.direction[r * 3 + a] * g.spacing[a] * idx[a];
  }
  const auto back = to_index(p);
  for (int a = 0; a < 3; ++a) EXPECT_NEAR(back[a], idx[a], 1e-9) << a;
  g.spacing = {1, 0, 1};
  EXPECT_THROW(PatientToIndex{g}, std::invalid_argument);
}
