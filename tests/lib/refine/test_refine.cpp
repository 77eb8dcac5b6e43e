// Refinement restores true masks corrupted in known ways (Dice against the clean mask >= 0.99 for
// every corruption kind), and leaves a clean mask alone.
#include <gmock/gmock.h>

#include <functional>

#include "io/synth.hpp"
#include "metrics/scores.hpp"
#include "refine/refine.hpp"
#include "spine/labels.hpp"

using namespace spineparse;

namespace {

std::shared_ptr<NdArray> clean_mask(int case_number, int keep_levels = 19) {
  io::SynthOptions o;
  o.seed = 11;
  o.min_size = 120;
  o.max_size = 140;
  auto p = io::make_phantom(o, case_number);
  auto m = std::make_shared<NdArray>(*p.mask);
  // Keep the lowest `keep_levels` chain positions (as if the field of view ended there).
  for (std::int64_t i = 0; i < m->numel(); ++i) {
    auto& v = m->data<std::uint8_t>()[i];
    for (int k = keep_levels; k < 19; ++k)
      if (v == kSpineChain[k]) v = 0;
  }
  return m;
}

double dice(const NdArray& a, const NdArray& clean) {
  return metrics::case_mean(metrics::score_case(a, clean, {4, 0.5, 0.5}, false),
                            &metrics::StructureScore::dice, "all");
}

void relabel(NdArray& m, const std::function<int(int)>& f) {
  for (std::int64_t i = 0; i < m.numel(); ++i)
    m.data<std::uint8_t>()[i] = static_cast<std::uint8_t>(f(m.data<std::uint8_t>()[i]));
}

// Runs refinement on a corrupted copy; checks the corruption hurt and the refinement repaired it.
void expect_repaired(const NdArray& clean, const std::function<void(NdArray&)>& corrupt,
                     const std::string& what) {
  NdArray bad(clean);
  corrupt(bad);
  const double before = dice(bad, clean);
  EXPECT_LT(before, 0.99) << what << ": the corruption must matter";
  refine::refine_labels(bad, {});
  const double after = dice(bad, clean);
  EXPECT_GE(after, 0.99) << what << " (before " << before << ")";
  std::printf("%-10s Dice vs clean: corrupted %.4f, refined %.4f\n", what.c_str(), before, after);
}

}  // namespace

TEST(Refine, CleanMasksAreLeftAlmostAlone) {
  // No structure is relabelled and nothing is filled; the only change allowed is a piece of a
  // structure that the field of view splits off and that touches its neighbour (it joins the
  // neighbour, as a stray fragment would).
  for (int c = 1; c <= 6; ++c) {
    auto m = clean_mask(c);
    NdArray copy(*m);
    auto r = refine::refine_labels(copy, {});
    EXPECT_EQ(r.relabelled, 0) << "case " << c;
    EXPECT_EQ(r.filled_voxels, 0) << "case " << c;
    EXPECT_LE(r.changed_voxels, 50) << "case " << c;
    EXPECT_GE(dice(copy, *m), 0.999) << "case " << c;
  }
}

TEST(Refine, RepairsSwappedLabels) {
  for (int c = 1; c <= 3; ++c) {
    expect_repaired(
        *clean_mask(c),
        [](NdArray& m) { relabel(m, [](int v) { return v == 3   ? 4
                                                       : v == 4 ? 3
                                                                : v; }); }, "swap");
    expect_repaired(
        *clean_mask(c),
        [](NdArray& m) { relabel(m, [](int v) { return v == 12   ? 13
                                                       : v == 13 ? 12
                                                                 : v; }); },
        "swap-disc");
  }
}

TEST(Refine, RepairsDuplicatedLabels) {
  for (int c = 1; c <= 3; ++c)
    expect_repaired(
        *clean_mask(c), [](NdArray& m) { relabel(m, [](int v) { return v == 5 ? 4 : v; }); },
        "duplicate");
}

TEST(Refine, RepairsAShiftByOneLevel) {
  for (int c = 1; c <= 3; ++c) {
    expect_repaired(
        *clean_mask(c, 15),
        [](NdArray& m) {
          // Every vertebra called the next one up (S -> L5, L5 -> L4, ...), discs likewise: a
          // miscounted level.
          relabel(m, [](int v) {
            return v >= 1 && v <= 9 ? v + 1 : v >= 11 && v <= 18 ? v + 1 : v;
          });
        },
        "shift");
  }
}

TEST(Refine, RemovesIslandsAndMergesFragments) {
  for (int c = 1; c <= 3; ++c) {
    expect_repaired(
        *clean_mask(c),
        [](NdArray& m) {
          const std::int64_t D = m.dim(0), H = m.dim(1), W = m.dim(2);
          auto* x = m.data<std::uint8_t>();
          // Islands of spine labels in the background, far from the spine (top rows).
          for (int k = 0; k < 12; ++k) {
            const std::int64_t d = k % D, h = 2 + (k % 3) * 7, w = 5 + k * 8 % (W - 10);
            for (int a = 0; a < 5; ++a)
              for (int b = 0; b < 5; ++b)
                x[(d * H + h + a) * W + w + b] = static_cast<std::uint8_t>(1 + k % 19);
          }
        },
        "islands");
  }
}

TEST(Refine, FillsHoles) {
  for (int c = 1; c <= 3; ++c) {
    expect_repaired(
        *clean_mask(c),
        [](NdArray& m) {
          const std::int64_t D = m.dim(0), H = m.dim(1), W = m.dim(2);
          auto* x = m.data<std::uint8_t>();
          // Punch the interior of every vertebra and disc in every slice: keep a 1-voxel rim.
          std::vector<std::uint8_t> copy(x, x + m.numel());
          for (std::int64_t d = 0; d < D; ++d)
            for (std::int64_t h = 1; h + 1 < H; ++h)
              for (std::int64_t w = 1; w + 1 < W; ++w) {
                const auto i = (d * H + h) * W + w;
                const auto v = copy[i];
                if (v && copy[i - 1] == v && copy[i + 1] == v && copy[i - W] == v &&
                    copy[i + W] == v && copy[i - 2 < 0 ? i : i - 2] == v &&
                    copy[i + 2 < m.numel() ? i + 2 : i] == v)
                  x[i] = 0;
              }
        },
        "holes");
  }
}

namespace {
// Labels above chain position `from` (exclusive) moved one level up: vertebra k -> k + 1, disc
// 10 + k -> 11 + k, as a network that counts one level too many from there on.
int shifted_above(int v, int from) {
  const int pos = [&] {
    for (int p = 0; p < 19; ++p)
      if (kSpineChain[p] == v) return p;
    return -1;
  }();
  return pos > from ? v + 1 : v;
}
// Dice of one structure in `a` against `truth`.
double dice_of(const NdArray& a, const NdArray& truth, int label) {
  std::int64_t x = 0, y = 0, both = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    const bool p = a.data<std::uint8_t>()[i] == label, t = truth.data<std::uint8_t>()[i] == label;
    x += p, y += t, both += p && t;
  }
  return x + y ? 2.0 * both / static_cast<double>(x + y) : 1.0;
}
}  // namespace

TEST(Refine, JoinsAStructureLabelledTwoWaysAndCountsTheLevelsAboveIt) {
  // L4's cranial half called L3, and every level above it named one off: the networks' usual
  // failure. The halves are one structure; counting from the sacrum names the rest.
  for (int c = 1; c <= 3; ++c) {
    expect_repaired(
        *clean_mask(c, 15),
        [](NdArray& m) {
          const std::int64_t W = m.dim(2);
          std::int64_t lo = W, hi = -1;  // L4's extent along W (W runs superior to inferior)
          auto* x = m.data<std::uint8_t>();
          for (std::int64_t i = 0; i < m.numel(); ++i)
            if (x[i] == 3) lo = std::min(lo, i % W), hi = std::max(hi, i % W);
          for (std::int64_t i = 0; i < m.numel(); ++i) {
            if (x[i] == 3 && i % W < (lo + hi) / 2)
              x[i] = 4;
            else if (x[i] != 3)
              x[i] = static_cast<std::uint8_t>(shifted_above(x[i], 4));
          }
        },
        "two-ways");
  }
}

TEST(Refine, CutsTwoBodiesThatShareALabelWhereTheDiscWasMissed) {
  // The L3/L4 disc missed and L3 called L4 with it (one component two bodies long), the levels
  // above named one level low. The component is cut in two and the levels above are counted.
  for (int c = 1; c <= 3; ++c) {
    const auto clean = clean_mask(c, 15);
    NdArray bad(*clean);
    relabel(bad, [](int v) {
      if (v == 13 || v == 4) return 3;       // disc L3/L4 and L3 become L4
      if (v >= 5 && v <= 8) return v - 1;    // L2 -> L3, ...
      if (v >= 14 && v <= 17) return v - 1;  // L2/L3 -> L3/L4, ...
      return v;
    });
    refine::refine_labels(bad, {});
    for (int label : {1, 2, 11, 12, 5, 6, 7, 14, 15, 16})
      EXPECT_GE(dice_of(bad, *clean, label), 0.95) << "case " << c << " " << structure_name(label);
    for (int label : {3, 4})  // the bodies either side of the missed disc, cut where it was
      EXPECT_GE(dice_of(bad, *clean, label), 0.75) << "case " << c << " " << structure_name(label);
  }
}

TEST(Refine, CutsTheLevelsAboveALongSacrumOffIt) {
  // The L5/S disc missed and L5 called S with it (one sacrum a level too long), every level
  // above named one low. L5 is cut off the sacrum and the levels above are counted.
  for (int c = 1; c <= 3; ++c) {
    const auto clean = clean_mask(c, 15);
    NdArray bad(*clean);
    relabel(bad, [](int v) {
      if (v == 11 || v == 2) return 1;       // L5/S and L5 become S
      if (v >= 3 && v <= 8) return v - 1;    // L4 -> L5, ...
      if (v >= 12 && v <= 17) return v - 1;  // L4/L5 -> L5/S, ...
      return v;
    });
    refine::refine_labels(bad, {});
    for (int label : {3, 4, 5, 12, 13, 14})
      EXPECT_GE(dice_of(bad, *clean, label), 0.95) << "case " << c << " " << structure_name(label);
    for (int label : {1, 2})  // the sacrum and L5, cut where the disc was
      EXPECT_GE(dice_of(bad, *clean, label), 0.7) << "case " << c << " " << structure_name(label);
  }
}
