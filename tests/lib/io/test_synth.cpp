// Synthetic cohorts: layout, labels in anatomical order, realistic geometry, determinism.
#include <gmock/gmock.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "io/dataset.hpp"
#include "io/synth.hpp"
#include "io/volume_io.hpp"
#include "spineparse/files.hpp"
#include "test_util.hpp"

using namespace spineparse;
using namespace spineparse::io;
namespace fs = std::filesystem;

namespace {
SynthOptions small(std::uint64_t seed) {
  SynthOptions o;
  o.seed = seed;
  o.cases = 3;
  o.min_size = 90;
  o.max_size = 130;
  return o;
}
// The chain from the sacrum up: S, L5/S, L5, L4/L5, ..., T9/T10, T9.
std::vector<int> chain() {
  std::vector<int> c;
  for (int k = 1; k <= 10; ++k) {
    c.push_back(k);
    if (k < 10) c.push_back(10 + k);
  }
  return c;
}
}  // namespace

TEST(Synth, SameSeedSameVolumesOtherSeedOtherVolumes) {
  auto a = make_phantom(small(5), 2), b = make_phantom(small(5), 2), c = make_phantom(small(6), 2);
  ASSERT_EQ(a.image->nbytes(), b.image->nbytes());
  EXPECT_EQ(0, std::memcmp(a.image->raw(), b.image->raw(), a.image->nbytes()));
  EXPECT_EQ(0, std::memcmp(a.mask->raw(), b.mask->raw(), a.mask->nbytes()));
  EXPECT_TRUE(c.image->shape() != a.image->shape() ||
              std::memcmp(a.image->raw(), c.image->raw(), a.image->nbytes()) != 0);
}

TEST(Synth, RealScanGeometryByDefault) {
  SynthOptions o;
  for (int i = 1; i <= 4; ++i) {
    auto p = make_phantom(o, i);
    const auto& s = p.image->shape();  // [D, H, W]
    EXPECT_GE(s[0], 12);
    EXPECT_LE(s[0], 15);
    EXPECT_GE(s[1], 512);
    EXPECT_LE(s[1], 880);
    EXPECT_GE(p.geometry.spacing[0], 0.3 - 1e-9);
    EXPECT_LE(p.geometry.spacing[0], 0.75 + 1e-9);
    EXPECT_GE(p.geometry.spacing[2], 3.5);
    EXPECT_LE(p.geometry.spacing[2], 4.7);
  }
}

TEST(Synth, SeatedTheSacrumLiesOnTheL5SDiscAWedgeTallerInFront) {
  SynthOptions o = small(11);
  o.seated_sacrum = true;
  for (int i = 1; i <= 6; ++i) {
    const auto p = make_phantom(o, i);
    const auto &s = p.truth[0], &d = p.truth[10];
    // The plate is the disc's lower surface: one truth, always defined.
    EXPECT_NEAR(s.superior_deg, d.inferior_deg, 1e-9) << p.id;
    EXPECT_GT(d.anterior_height_mm, d.posterior_height_mm + 0.5) << p.id;  // lordotic
    EXPECT_GT(d.posterior_height_mm, 0.5 * d.middle_height_mm) << p.id;
    // In the mask's middle slice of the disc, under the middle half of the disc's rows (H runs
    // anterior to posterior, W superior to inferior), the sacrum begins where the disc ends.
    const auto* m = p.mask->data<std::uint8_t>();
    const std::int64_t D = p.mask->dim(0), H = p.mask->dim(1), W = p.mask->dim(2);
    std::int64_t mid = 0, most = -1;
    for (std::int64_t k = 0; k < D; ++k) {
      const auto n = std::count(m + k * H * W, m + (k + 1) * H * W, 11);
      if (n > most) most = n, mid = k;
    }
    std::vector<std::int64_t> bottom;  // per row with disc: the disc's lowest voxel
    for (std::int64_t h = 0; h < H; ++h) {
      const std::uint8_t* row = m + (mid * H + h) * W;
      for (std::int64_t w = W - 2; w >= 0; --w)
        if (row[w] == 11) {
          bottom.push_back((mid * H + h) * W + w);
          break;
        }
    }
    const std::size_t ends = bottom.size() / 2;
    std::size_t on_sacrum = 0;
    for (std::size_t i = bottom.size() / 4; i < bottom.size() / 4 + ends; ++i)
      on_sacrum += m[bottom[i] + 1] == 1;
    ASSERT_GT(ends, 3u) << p.id;
    EXPECT_GE(static_cast<double>(on_sacrum) / static_cast<double>(ends), 0.9) << p.id;
  }
}

// The default phantoms are the demo models' training data (scripts/train-demo-models draws them
// again): a change to what synth draws by default must be deliberate, and this checksum with it.
TEST(Synth, TheDefaultPhantomsAreTheTrainingDataBitForBit) {
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a over the image and mask bytes
  for (int i = 1; i <= 2; ++i) {
    const auto p = make_phantom(small(5), i);
    for (const auto* a : {p.image.get(), p.mask.get()}) {
      const auto* b = static_cast<const unsigned char*>(a->raw());
      for (std::size_t k = 0; k < a->nbytes(); ++k) h = (h ^ b[k]) * 1099511628211ULL;
    }
  }
  EXPECT_EQ(h, 0xf4a3480e00762bdaULL) << std::hex << h;
}

TEST(Synth, LabelsStackInAnatomicalOrderInTheMiddleHalf) {
  int cut_off = 0, not_div4 = 0;
  for (std::uint64_t seed = 0; seed < 4; ++seed) {
    for (int i = 1; i <= 3; ++i) {
      auto p = make_phantom(small(seed), i);
      const std::int64_t D = p.mask->dim(0), H = p.mask->dim(1), W = p.mask->dim(2);
      not_div4 += H % 4 != 0;
      std::map<int, double> sum_w, count;
      std::map<int, double> sum_img;
      const auto* m = p.mask->data<std::uint8_t>();
      const auto* x = p.image->data<std::int16_t>();
      for (std::int64_t d = 0; d < D; ++d)
        for (std::int64_t h = 0; h < H; ++h)
          for (std::int64_t w = 0; w < W; ++w) {
            const auto l = m[(d * H + h) * W + w];
            if (!l) continue;
            ASSERT_GE(h, H / 4) << "label outside the middle half of axis 0";
            ASSERT_LT(h, H - H / 4);
            sum_w[l] += w;
            count[l] += 1;
            sum_img[l] += x[(d * H + h) * W + w];
          }
      ASSERT_TRUE(count.count(1)) << "the sacrum is always in view";
      // Present labels form a prefix of the chain, and their centroids climb along W.
      double last_w = 1e9;
      bool gap = false;
      for (int l : chain()) {
        if (!count.count(l)) {
          gap = true;
          continue;
        }
        ASSERT_FALSE(gap) << "label " << l << " present above a missing level";
        const double cw = sum_w[l] / count[l];
        EXPECT_LT(cw, last_w) << "label " << l;
        last_w = cw;
      }
      cut_off += gap;
      // T2-like: discs brighter than vertebral bodies on average.
      double disc = 0, vert = 0, nd = 0, nv = 0;
      for (auto& [l, s] : sum_img) {
        (l >= 11 ? disc : vert) += s;
        (l >= 11 ? nd : nv) += count[l];
      }
      EXPECT_GT(disc / nd, 1.3 * vert / nv);
    }
  }
  EXPECT_GT(not_div4, 0) << "sizes not divisible by 4 must occur";
}

TEST(Synth, WritesTheOriginalLayout) {
  spineparse::testing::TempDir d;
  auto o = small(1);
  auto summary = write_cohort(o, d.str());
  ASSERT_EQ(summary.size(), 3u);
  for (int i = 1; i <= 3; ++i) {
    EXPECT_TRUE(fs::exists(d / ("original_mr/Case" + std::to_string(i) + ".nii.gz")));
    EXPECT_TRUE(fs::exists(d / ("mask/mask_case" + std::to_string(i) + ".nii.gz")));
  }
  EXPECT_TRUE(fs::exists(d / "cohort.json"));
  auto seeds = list_dataset(d.str(), "auto");
  ASSERT_EQ(seeds.size(), 3u);
  auto img = read_image(seeds[0].attrs["image_path"]);
  auto mask = read_labels(seeds[0].attrs["mask_path"], 19);
  EXPECT_EQ(img.info.component_type, "short");
  EXPECT_TRUE(img.geometry.same_as(mask.geometry));
  // Written files equal the in-memory phantom.
  auto p = make_phantom(o, 1);
  EXPECT_EQ(img.data->shape(), p.image->shape());
  EXPECT_EQ(img.data->data<float>()[1234], p.image->data<std::int16_t>()[1234]);
  // Same seed, same bytes on disk.
  spineparse::testing::TempDir d2;
  write_cohort(o, d2.str());
  EXPECT_EQ(read_file((d / "mask/mask_case2.nii.gz").string()),
            read_file((d2 / "mask/mask_case2.nii.gz").string()));
}
