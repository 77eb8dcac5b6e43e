// Training: the original's folds, augmentation alignment, and a short run that checkpoints and
// resumes exactly.
#include <gmock/gmock.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "io/synth.hpp"
#include "io/training_range.hpp"
#include "nn/safetensors.hpp"
#include "spineparse/files.hpp"
#include "test_util.hpp"
#include "train/augment.hpp"
#include "train/folds.hpp"
#include "train/samples.hpp"
#include "train/training.hpp"

using namespace spineparse;
using namespace spineparse::nn;
using namespace spineparse::tools::train;
namespace fs = std::filesystem;

namespace {
std::vector<int> ints(const std::string& s) {
  std::istringstream in(s);
  std::vector<int> v;
  for (int x; in >> x;) v.push_back(x);
  return v;
}
}  // namespace

TEST(Folds, ReproduceTheOriginalSplitsFor215Cases) {
  // Spec Appendix C.
  const char* tests[5] = {
      "6 8 13 16 19 34 38 56 64 72 75 76 84 87 90 91 97 98 107 113 127 137 138 140 142 144 145 146 "
      "154 155 159 161 163 169 170 172 182 186 191 199 204 210 212",
      "5 9 14 17 20 23 25 27 31 41 45 46 52 53 55 57 61 62 67 77 81 93 102 105 108 109 110 111 112 "
      "123 130 136 139 150 153 156 158 160 162 174 180 188 198",
      "1 3 4 11 15 21 28 42 44 47 49 50 51 60 63 65 70 74 86 94 95 96 99 114 117 119 124 125 126 "
      "131 135 147 151 157 183 189 192 195 201 206 207 209 211",
      "2 7 12 18 24 29 35 36 39 43 54 58 66 69 79 85 92 101 103 106 115 120 121 122 129 132 133 "
      "134 152 164 165 167 171 179 184 185 187 197 200 202 213 214 215",
      "10 22 26 30 32 33 37 40 48 59 68 71 73 78 80 82 83 88 89 100 104 116 118 128 141 143 148 "
      "149 166 168 173 175 176 177 178 181 190 193 194 196 203 205 208"};
  const char* vals[5] = {"1 2 3 4", "1 2 3 4", "2 5 6 7", "1 3 4 5", "1 2 3 4"};
  for (int f = 0; f < 5; ++f) {
    Fold fold = make_fold(215, f);
    EXPECT_EQ(fold.test, ints(tests[f])) << "fold " << f + 1;
    EXPECT_EQ(fold.val, ints(vals[f])) << "fold " << f + 1;
    EXPECT_EQ(fold.train.size(), 168u);
  }
}

TEST(Folds, AnyOtherCountIsCoveredOnce) {
  for (int n : {7, 12, 60, 101}) {
    std::vector<int> seen(n + 1, 0);
    for (int f = 0; f < 5; ++f) {
      Fold fold = make_fold(n, f);
      for (int c : fold.test) ++seen[c];
      EXPECT_FALSE(fold.train.empty());
      EXPECT_FALSE(fold.val.empty());
      EXPECT_EQ(fold.train.size() + fold.val.size() + fold.test.size(),
                static_cast<std::size_t>(n));
    }
    for (int c = 1; c <= n; ++c) EXPECT_EQ(seen[c], 1) << "n " << n << " case " << c;
  }
  EXPECT_THROW(make_fold(4, 0), std::runtime_error);
}

TEST(Augment, OneFieldKeepsImageLogitsAndLabelsAligned) {
  // Image and logits carry the label map itself; after augmentation they must still agree.
  auto labels = torch::zeros({2, 64, 96}, torch::kInt64);
  labels.narrow(1, 20, 20).narrow(2, 30, 30).fill_(3);
  labels.narrow(1, 10, 8).narrow(2, 10, 60).fill_(12);
  AugmentedSample s{labels.to(torch::kFloat32).unsqueeze(1), {}, labels};
  s.extra =
      torch::nn::functional::interpolate(s.image, torch::nn::functional::InterpolateFuncOptions()
                                                      .size(std::vector<int64_t>{32, 48})
                                                      .mode(torch::kNearest));
  AugmentConfig cfg;
  cfg.elastic_p = 1.0;
  for (std::uint64_t seed = 0; seed < 6; ++seed) {
    auto a = augment(s, cfg, seed);
    ASSERT_EQ(a.labels.sizes(), labels.sizes());
    const double agree = (a.image.squeeze(1).round().to(torch::kInt64) == a.labels)
                             .to(torch::kFloat32)
                             .mean()
                             .item<double>();
    EXPECT_GT(agree, 0.93) << "seed "
                           << seed;  // bilinear image vs nearest labels differ only at borders
    auto small = torch::nn::functional::interpolate(a.labels.unsqueeze(1).to(torch::kFloat32),
                                                    torch::nn::functional::InterpolateFuncOptions()
                                                        .size(std::vector<int64_t>{32, 48})
                                                        .mode(torch::kNearest));
    const double agree_extra =
        ((a.extra - small).abs() < 0.5).to(torch::kFloat32).mean().item<double>();
    EXPECT_GT(agree_extra, 0.9) << "seed " << seed;
  }
  auto same = augment(s, cfg, 4), again = augment(s, cfg, 4);
  EXPECT_TRUE(torch::equal(same.labels, again.labels));  // a function of the seed
}

TEST(Augment, FieldOfViewCropCutsOneEndAndStretchesTheRest) {
  // Columns carry their own index: after a crop that keeps a fraction f of W from one end, the
  // first and last output columns show that window's ends, and labels follow the image.
  const std::int64_t W = 101;
  auto cols = torch::arange(W, torch::kFloat32).view({1, 1, 1, W}).expand({1, 1, 40, W});
  auto labels = (cols[0] / 10).floor().to(torch::kInt64);  // [1, 40, W]: 0..10 by column
  AugmentedSample s{cols.contiguous(), {}, labels.contiguous()};
  AugmentConfig cfg;
  cfg.rotate_deg = 0, cfg.elastic_p = 0, cfg.contrast_p = 0;
  cfg.fov_crop_p = 1, cfg.fov_crop_max = 0.4;
  int cut_low = 0, cut_high = 0;
  for (std::uint64_t seed = 0; seed < 16; ++seed) {
    auto a = augment(s, cfg, seed);
    const double first = a.image[0][0][20][0].item<double>();
    const double last = a.image[0][0][20][W - 1].item<double>();
    const double kept = (last - first) / (W - 1);
    EXPECT_GE(kept, 0.6 - 1e-4) << "seed " << seed;
    EXPECT_LT(kept, 1.0) << "seed " << seed;
    EXPECT_TRUE(first < 1e-3 || last > W - 1 - 1e-3) << "one end stays: seed " << seed;
    cut_low += first > 1e-3, cut_high += last < W - 1 - 1e-3;
    EXPECT_EQ(a.labels[0][20][W - 1].item<std::int64_t>(), std::lround(last) / 10);
  }
  EXPECT_GT(cut_low, 0);
  EXPECT_GT(cut_high, 0);
  cfg.fov_crop_p = 0;  // off: the field of view is whole
  auto a = augment(s, cfg, 3);
  EXPECT_NEAR(a.image[0][0][20][W - 1].item<double>(), W - 1, 1e-4);
}

TEST(Training, ShortRunCheckpointsAndResumesExactly) {
  spineparse::testing::TempDir d;
  io::SynthOptions o;
  o.cases = 8;
  o.seed = 3;
  o.min_size = 70;
  o.max_size = 90;
  io::write_cohort(o, (d / "cohort").string());
  TrainConfig cfg;
  cfg.coarse_width = 0.125;
  cfg.coarse_height = 32;
  cfg.coarse_cols = 64;
  cfg.deeplab_epochs = 2;
  cfg.gcsn_epochs = 3;
  cfg.stop_after_epochs = 2;  // interrupted after two epochs of each network
  cfg.fine_fmaps = 4;
  cfg.fine_height = 32;
  cfg.fine_cols = 64;
  cfg.fine_epochs = 2;
  cfg.iterations_per_epoch = 2;
  std::vector<std::string> lines;
  auto progress = [&](const std::string& l) { lines.push_back(l); };
  auto r = train_coarse((d / "cohort").string(), 0, cfg, (d / "a").string(), false, progress);
  EXPECT_EQ(r.log.size(), 2u);
  EXPECT_TRUE(fs::exists(d / "a/fold1/coarse/deeplab/best.safetensors"));
  for (const char* f : {"best.safetensors", "last.safetensors", "optimizer.pt", "state.json",
                        "training.csv", "curve.svg"})
    EXPECT_TRUE(fs::exists(d / ("a/fold1/coarse/gcsn/" + std::string(f)))) << f;
  EXPECT_THAT(lines.back(), ::testing::HasSubstr("gcsn epoch 2/3"));

  // Resumed to the end, it equals 3 epochs straight.
  cfg.stop_after_epochs = 0;
  auto resumed = train_coarse((d / "cohort").string(), 0, cfg, (d / "a").string(), true, progress);
  EXPECT_EQ(resumed.log.size(), 3u);
  auto straight =
      train_coarse((d / "cohort").string(), 0, cfg, (d / "b").string(), false, progress);
  // The weights say which orientation the model learnt (the synthetic cohort's), for io.reorient.
  const auto meta =
      load_safetensors((d / "a/fold1/coarse/gcsn/best.safetensors").string()).metadata;
  EXPECT_EQ(meta.at("orientation"), "PIL");
  // And the range of scans it was trained on, measured on the fold's training cases.
  const auto range = spineparse::io::TrainingRange::from_json(meta.at("training_range"), "best");
  EXPECT_GT(range.cases, 0);
  EXPECT_THAT(range.source, ::testing::HasSubstr("training cases of"));
  const auto& slice = range.properties.at("slice_spacing_mm");
  EXPECT_GE(slice.p5, 3.6);  // synth draws 3.6-4.6 mm
  EXPECT_LE(slice.p95, 4.6);
  EXPECT_LE(slice.p5, slice.median);
  EXPECT_EQ(range.properties.size(), 5u);
  auto wa = load_safetensors((d / "a/fold1/coarse/gcsn/last.safetensors").string()).tensors;
  auto wb = load_safetensors((d / "b/fold1/coarse/gcsn/last.safetensors").string()).tensors;
  ASSERT_EQ(wa.size(), wb.size());
  double max_diff = 0;
  for (auto& [k, v] : wa) {
    if (v.is_floating_point())
      max_diff = std::max(max_diff, (v - wb.at(k)).abs().max().item<double>());
  }
  EXPECT_LT(max_diff, 1e-4);
  EXPECT_NEAR(resumed.log.back().loss, straight.log.back().loss, 1e-4);

  auto f = train_fine((d / "cohort").string(), 0, cfg, (d / "a").string(), resumed.best_weights,
                      false, progress);
  EXPECT_EQ(f.log.size(), 2u);
  EXPECT_TRUE(fs::exists(d / "a/fold1/fine/best.safetensors"));
  const std::string csv = read_file((d / "a/fold1/fine/training.csv").string());
  EXPECT_THAT(csv, ::testing::StartsWith("epoch,iterations,loss,lr,val_dice,seconds\n1,2,"));
  cfg.fine_logits = "out-of-fold";
  EXPECT_THAT(
      [&] { train_fine((d / "cohort").string(), 0, cfg, (d / "a").string(), "", false, progress); },
      ::testing::ThrowsMessage<std::runtime_error>(
          ::testing::HasSubstr("out-of-fold logits need every fold's coarse model")));
}

TEST(Training, ConfigRejectsUnknownKeys) {
  spineparse::testing::TempDir d;
  const std::string f = (d / "c.json").string();
  write_file_atomic(f, R"({"coarse_width": 0.5, "epochz": 3})");
  EXPECT_THAT(
      [&] { TrainConfig::from_json_file(f); },
      ::testing::ThrowsMessage<std::runtime_error>(::testing::HasSubstr("unknown key /epochz")));
  write_file_atomic(f, R"({"coarse_width": 0.5, "augment": {"elastic_p": 0.5}})");
  EXPECT_DOUBLE_EQ(TrainConfig::from_json_file(f).augment.elastic_p, 0.5);
}

TEST(Training, DiceTermWeighsARareStructureTheCrossEntropyIgnores) {
  // 1000 background voxels and 10 of label 5; logits that say "background" everywhere.
  auto y = torch::zeros({1, 1010}, torch::kLong);
  y.narrow(1, 0, 10).fill_(5);
  auto logits = torch::zeros({1, 20, 1010});
  logits.select(1, 0).fill_(4.0);
  TrainConfig ce;
  TrainConfig both;
  both.loss = "ce+dice";
  const double l_ce = segmentation_loss(logits, y, ce).item<double>();
  const double l_both = segmentation_loss(logits, y, both).item<double>();
  EXPECT_NEAR(l_ce, torch::nn::functional::cross_entropy(logits, y).item<double>(), 1e-9);
  // Every structure but one is absent (soft Dice ~1 from the smoothing only where nothing is
  // predicted either); label 5's Dice is ~0, so the term adds about 1/19 at least.
  EXPECT_GT(l_both - l_ce, 0.04);
  // Perfect, confident logits: both terms near zero.
  auto good = torch::full({1, 20, 1010}, -20.0);
  good.select(1, 0).narrow(1, 10, 1000).fill_(20.0);
  good.select(1, 5).narrow(1, 0, 10).fill_(20.0);
  EXPECT_LT(segmentation_loss(good, y, both).item<double>(), 1e-3);
  spineparse::testing::TempDir d;
  const std::string f = (d / "c.json").string();
  write_file_atomic(f, R"({"loss": "dice"})");
  EXPECT_THAT([&] { TrainConfig::from_json_file(f); },
              ::testing::ThrowsMessage<std::runtime_error>(::testing::HasSubstr("loss is")));
}

TEST(Training, CasesStoredInDifferentOrientationsAreRefusedByName) {
  EXPECT_EQ(common_orientation({{"Case1", "PIL"}, {"Case2", "PIL"}}), "PIL");
  try {
    common_orientation({{"Case1", "PIL"}, {"Case2", "RAS"}, {"Case3", "PIL"}});
    FAIL() << "accepted mixed orientations";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("most PIL; Case2 RAS"));
  }
}
