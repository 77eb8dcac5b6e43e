// Quality control: each signal on hand-made label maps (a synthetic phantom's true mask, then a
// level missing, two levels swapped, a fragment in the canal, a structure off the spine, a
// vertebra cut by the view), the verdict and reasons, review.csv's order and the records' round
// trip, and the measurement picture of an unreliable structure.
#include <gmock/gmock.h>

#include <cmath>
#include <functional>

#include "io/synth.hpp"
#include "metrics/measure.hpp"
#include "metrics/overlay.hpp"
#include "metrics/qc.hpp"
#include "spine/labels.hpp"

using namespace spineparse;
using namespace spineparse::metrics;
using ::testing::HasSubstr;

namespace {

struct Mask {
  std::shared_ptr<NdArray> labels;
  std::array<double, 3> spacing;  // mm along H, W, D
};

Mask phantom_mask(int case_number) {
  io::SynthOptions o;
  o.seed = 11;
  o.min_size = 120;
  o.max_size = 140;
  auto p = io::make_phantom(o, case_number);
  return {std::make_shared<NdArray>(*p.mask),
          {p.geometry.spacing[0], p.geometry.spacing[1], p.geometry.spacing[2]}};
}

void relabel(NdArray& m, const std::function<int(int)>& f) {
  for (std::int64_t i = 0; i < m.numel(); ++i)
    m.data<std::uint8_t>()[i] = static_cast<std::uint8_t>(f(m.data<std::uint8_t>()[i]));
}

const StructureSignals& of(const CaseSignals& c, int label) {
  for (const auto& s : c.structures)
    if (s.label == label) return s;
  throw std::runtime_error("no structure " + std::to_string(label));
}

CaseSignals signals(const Mask& m) {
  return qc_signals(*m.labels, nullptr, nullptr, nullptr, m.spacing, "");
}

// A model that trusts everything except what the signals say is wrong.
QcModel plain_model() {
  return QcModel::from_json(R"({
    "structure": {"bias": 3, "weights": {"order_wrong": -6, "off_axis": -2, "fragmented": -8,
                                         "probability": 0}, "fill": {"probability": 1}},
    "case": {"bias": -4, "weights": {"mean_confidence": 9, "missing": -1}}})",
                            "test");
}

}  // namespace

TEST(QcSignals, ACleanMaskIsInOrderOnTheSpineWithNothingMissing) {
  for (int c = 1; c <= 3; ++c) {
    const CaseSignals s = signals(phantom_mask(c));
    EXPECT_TRUE(s.missing.empty()) << "case " << c;
    EXPECT_GE(s.structures.size(), 15u);
    for (const auto& x : s.structures) {
      EXPECT_TRUE(x.order_ok) << "case " << c << " " << structure_name(x.label);
      EXPECT_EQ(x.fragmented, 0.0) << structure_name(x.label);
      if (!std::isnan(x.off_axis)) {
        EXPECT_LT(x.off_axis, 0.5) << structure_name(x.label);
      }
      if (!x.cut && !std::isnan(x.spacing_misfit)) {  // neighbours touch
        EXPECT_LT(x.spacing_misfit, 0.35) << "case " << c << " " << structure_name(x.label);
      }
    }
    const QcResult r = assess(s, plain_model());
    EXPECT_EQ(r.verdict, "pass") << "case " << c;
  }
}

TEST(QcSignals, AMissingLevelIsNamed) {
  Mask m = phantom_mask(1);
  relabel(*m.labels, [](int v) { return v == 4 ? 0 : v; });  // L3 gone
  const CaseSignals s = signals(m);
  ASSERT_EQ(s.missing, std::vector<int>{4});
  const QcResult r = assess(s, plain_model());
  EXPECT_THAT(r.reasons, ::testing::Contains("missing_levels: L3"));
  EXPECT_NE(r.verdict, "pass");
}

TEST(QcSignals, TwoSwappedLevelsAreOutOfOrder) {
  Mask m = phantom_mask(2);
  relabel(*m.labels, [](int v) { return v == 4 ? 5 : v == 5 ? 4 : v; });  // L3 <-> L2
  const CaseSignals s = signals(m);
  EXPECT_FALSE(of(s, 4).order_ok);
  EXPECT_FALSE(of(s, 5).order_ok);
  EXPECT_TRUE(of(s, 3).order_ok);
  const QcResult r = assess(s, plain_model());
  EXPECT_THAT(r.reasons, ::testing::Contains(HasSubstr("level_order: L3 L2")));
  EXPECT_LT(r.confidence[3], 0.5);
  EXPECT_GT(r.confidence[2], 0.5);
  EXPECT_NE(r.verdict, "pass");
}

TEST(QcSignals, AFragmentInTheCanalAndAStructureOffTheSpineAreFlagged) {
  Mask m = phantom_mask(3);
  NdArray& a = *m.labels;
  const std::int64_t D = a.dim(0), H = a.dim(1), W = a.dim(2);
  auto* x = a.data<std::uint8_t>();
  // L4's centre, then a block of L4 well behind it (in the canal) and L2 moved far off.
  double hs = 0, ws = 0, n = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i)
    if (x[i] == 3) hs += static_cast<double>((i / W) % H), ws += static_cast<double>(i % W), ++n;
  const auto h4 = static_cast<std::int64_t>(hs / n), w4 = static_cast<std::int64_t>(ws / n);
  const auto behind = static_cast<std::int64_t>(25 / m.spacing[0]);
  for (std::int64_t d = D / 2 - 1; d <= D / 2 + 1; ++d)
    for (std::int64_t h = h4 + behind; h < h4 + behind + 3 && h < H; ++h)
      for (std::int64_t w = w4 - 2; w <= w4 + 2; ++w) x[(d * H + h) * W + w] = 3;
  std::vector<std::uint8_t> moved(x, x + a.numel());
  const auto shift = static_cast<std::int64_t>(45 / m.spacing[0]);  // L2 45 mm anterior
  for (std::int64_t i = 0; i < a.numel(); ++i)
    if (moved[i] == 5) x[i] = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    const std::int64_t h = (i / W) % H;
    if (moved[i] == 5 && h - shift >= 0) x[i - shift * W] = 5;
  }
  const CaseSignals s = signals(m);
  EXPECT_GT(of(s, 3).fragmented, 0.0);
  EXPECT_GT(of(s, 5).off_axis, 1.5);
  const QcResult r = assess(s, plain_model());
  EXPECT_THAT(r.reasons, ::testing::Contains(HasSubstr("labels_outside_spine: L2")));
  EXPECT_LT(r.confidence[4], r.confidence[1]);
}

// Exact shares on a small map: pieces that join only in a later row (a U), only through the slice
// before, or only at a corner (not face-connected, so apart).
TEST(QcSignals, FragmentationCountsFaceConnectedPiecesExactly) {
  auto a = NdArray::make<std::uint8_t>({3, 8, 10});
  auto set = [&](int l, std::int64_t d, std::int64_t h, std::int64_t w) {
    a->data<std::uint8_t>()[(d * 8 + h) * 10 + w] = static_cast<std::uint8_t>(l);
  };
  for (std::int64_t h = 0; h < 4; ++h) set(1, 0, h, 1), set(1, 0, h, 4);  // the U's two arms
  for (std::int64_t w = 1; w <= 4; ++w) set(1, 0, 4, w);                  // its base: 12 voxels
  set(1, 0, 7, 8);                                                        // and one apart: 1
  set(2, 0, 6, 0), set(2, 1, 6, 0), set(2, 1, 6, 1), set(2, 2, 7, 1);     // 3 joined, 1 apart
  set(3, 2, 0, 8), set(3, 2, 1, 9);                                       // corners only: 1 + 1
  const CaseSignals s = qc_signals(*a, nullptr, nullptr, nullptr, {1, 1, 1}, "");
  EXPECT_DOUBLE_EQ(of(s, 1).fragmented, 1.0 / 13);
  EXPECT_DOUBLE_EQ(of(s, 2).fragmented, 1.0 / 4);
  EXPECT_DOUBLE_EQ(of(s, 3).fragmented, 1.0 / 2);
}

TEST(QcSignals, AVertebraCutByTheViewIsListed) {
  Mask m = phantom_mask(1);
  NdArray& a = *m.labels;
  const std::int64_t D = a.dim(0), H = a.dim(1), W = a.dim(2);
  // Keep the columns from the middle of L1 down (W runs superior to inferior): L1 touches the
  // new edge, everything above it is gone.
  std::int64_t lo = W, hi = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i)
    if (a.data<std::uint8_t>()[i] == 6) lo = std::min(lo, i % W), hi = std::max(hi, i % W);
  const std::int64_t from = (lo + hi) / 2, W2 = W - from;
  auto cut = NdArray::make<std::uint8_t>({D, H, W2});
  for (std::int64_t r = 0; r < D * H; ++r)
    for (std::int64_t w = 0; w < W2; ++w)
      cut->data<std::uint8_t>()[r * W2 + w] = a.data<std::uint8_t>()[r * W + from + w];
  const CaseSignals s = signals({std::const_pointer_cast<NdArray>(cut), m.spacing});
  EXPECT_TRUE(of(s, 6).cut);
  EXPECT_FALSE(of(s, 2).cut);
  EXPECT_TRUE(s.missing.empty());
  const QcResult r = assess(s, plain_model());
  EXPECT_THAT(r.reasons, ::testing::Contains(HasSubstr("fov_cut: L1")));
}

TEST(QcSignals, ProbabilityRefinementAndCoarseAgreementArePerStructureShares) {
  Mask m = phantom_mask(1);
  const NdArray& L = *m.labels;
  const std::int64_t D = L.dim(0), H = L.dim(1), W = L.dim(2);
  NdArray unrefined(L), prob(DType::kUInt8, L.shape());
  // L4: half its voxels at probability 0.2, the rest at 1; L5 all came from another label.
  std::int64_t k = 0;
  for (std::int64_t i = 0; i < L.numel(); ++i) {
    const int l = L.data<std::uint8_t>()[i];
    prob.data<std::uint8_t>()[i] = l == 3 && (k++ % 2) ? 51 : 255;
    if (l == 2) unrefined.data<std::uint8_t>()[i] = 7;
  }
  // Coarse logits that say L4 everywhere: [20, D, 8, 16].
  auto logits = NdArray::make<float>({20, D, 8, 16});
  for (std::int64_t i = 0; i < D * 8 * 16; ++i) logits->data<float>()[3 * D * 8 * 16 + i] = 1;
  const CaseSignals s = qc_signals(L, &unrefined, &prob, logits.get(), m.spacing, "");
  EXPECT_NEAR(of(s, 3).probability, 0.6, 0.01);
  EXPECT_NEAR(of(s, 3).low_share, 0.5, 0.01);
  EXPECT_NEAR(of(s, 4).probability, 1.0, 1e-9);
  EXPECT_NEAR(of(s, 2).relabelled, 1.0, 1e-9);
  EXPECT_TRUE(std::isnan(of(s, 2).probability));  // no voxel kept the network's label
  EXPECT_GT(of(s, 3).coarse_agreement, 0.9);      // the crop's rows hold all of L4
  EXPECT_EQ(of(s, 4).coarse_agreement, 0.0);
  (void)H, (void)W;
}

TEST(QcSignals, TrainingRangeWarningsBecomeReasons) {
  const std::string warnings =
      "slice_spacing_mm 1 is outside the model's training range (3.3 to 4.8, median 4)\n"
      "an unrelated warning\n"
      "slices 52 is outside the model's training range (12 to 15, median 13)";
  const CaseSignals s = qc_signals(*phantom_mask(1).labels, nullptr, nullptr, nullptr,
                                   phantom_mask(1).spacing, warnings);
  EXPECT_EQ(s.out_of_range, (std::vector<std::string>{"slice_spacing_mm 1", "slices 52"}));
  const QcResult r = assess(s, plain_model());
  EXPECT_THAT(r.reasons, ::testing::Contains("out_of_range: slice_spacing_mm 1"));
  EXPECT_EQ(r.verdict, "review");  // demoted, whatever the score
}

TEST(Qc, ReviewListIsWorstFirstAndRecordsRoundTrip) {
  QcResult pass, review, fail, review_low;
  pass.verdict = "pass", pass.score = 0.95;
  review.verdict = "review", review.score = 0.8, review.reasons = {"missing_levels: L3"};
  review_low.verdict = "review", review_low.score = 0.6;
  fail.verdict = "fail", fail.score = 0.1, fail.reasons = {"a", "b, with a comma"};
  fail.confidence[4] = 0.21, fail.worst_label = 5;
  const std::string csv = review_csv({{"A", pass}, {"B", review}, {"C", fail}, {"D", review_low}});
  EXPECT_EQ(csv,
            "case,qc,qc_score,reasons,worst_structure,worst_confidence\n"
            "C,fail,0.1000,\"a;b, with a comma\",L2,0.2100\n"
            "D,review,0.6000,,,\n"
            "B,review,0.8000,missing_levels: L3,,\n"
            "A,pass,0.9500,,,\n");
  const QcResult back = qc_result_from_json(qc_record_json(fail, nullptr));
  EXPECT_EQ(back.verdict, "fail");
  EXPECT_EQ(back.reasons, fail.reasons);
  EXPECT_EQ(back.worst_label, 5);
  EXPECT_DOUBLE_EQ(back.confidence[4], 0.21);
  EXPECT_TRUE(std::isnan(back.confidence[0]));
}

TEST(Qc, ACalibrationFileIsCheckedAndMissingInputsTakeTheirFill) {
  EXPECT_THROW(QcModel::from_json("{}", "x.json"), std::runtime_error);
  EXPECT_THROW(QcModel::from_json("not json", "x.json"), std::runtime_error);
  const QcModel m = QcModel::from_json(
      R"({"structure": {"bias": 0, "weights": {"probability": 2}, "fill": {"probability": 0.5}},
          "case": {"bias": 0, "weights": {"missing": -1}}})",
      "x.json");
  EXPECT_NEAR(m.structure({{"probability", std::nan("")}}), 1 / (1 + std::exp(-1.0)), 1e-12);
  EXPECT_NEAR(m.structure({{"probability", 1.0}}), 1 / (1 + std::exp(-2.0)), 1e-12);
}

TEST(QcPicture, AnUnreliableStructureGetsNoGradeColour) {
  // A phantom with wedge fractures; the fractured vertebra's name is drawn red with its grade,
  // in grey with a question mark when QC does not trust it.
  io::SynthOptions o;
  o.seed = 3;
  o.min_size = 200;
  o.max_size = 220;
  o.fracture_rate = 1.0;
  const auto p = io::make_phantom(o, 1);
  NdArray image(DType::kFloat32, p.image->shape());
  for (std::int64_t i = 0; i < image.numel(); ++i)
    image.data<float>()[i] = p.image->data<std::int16_t>()[i];
  CaseMeasurement m = measure_case("c", *p.mask, p.geometry);
  int graded = 0;
  for (const auto& l : m.levels) graded += l.height_loss_grade >= 1;
  ASSERT_GT(graded, 0);
  auto red = [](const RgbImage& img) {
    int n = 0;
    for (std::size_t i = 0; i + 2 < img.rgb.size(); i += 3)
      n += img.rgb[i] == 255 && img.rgb[i + 1] == 60 && img.rgb[i + 2] == 60;
    return n;
  };
  EXPECT_GT(red(render_measurement_rgb(image, *p.mask, p.geometry, m, 400)), 0);
  std::array<double, 19> conf, reliable;
  conf.fill(0.2), reliable.fill(0.0);
  apply_confidence(m, conf, reliable);
  EXPECT_EQ(red(render_measurement_rgb(image, *p.mask, p.geometry, m, 400)), 0);
  EXPECT_THAT(m.level(3).note, HasSubstr("unreliable: QC confidence 0.20"));
  EXPECT_FALSE(m.lordosis_reliable());
}
