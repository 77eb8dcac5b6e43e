// Per-level measurements against known geometry: a hand-built label map of trapezoid bodies and
// discs, and synthetic phantoms whose truth synth computes from their shapes, stored in several
// orientations and slice spacings.
#include <gmock/gmock.h>

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "io/orientation.hpp"
#include "io/synth.hpp"
#include "metrics/measure.hpp"
#include "metrics/measurement_columns.hpp"
#include "metrics/overlay.hpp"
#include "spine/labels.hpp"
#include "spineparse/files.hpp"
#include "test_util.hpp"

using namespace spineparse;
using namespace spineparse::metrics;

namespace {

constexpr double kDeg = 57.29577951308232;

// A label map on an axial stack with identity direction: index (h, w, d) -> patient (x, y, z) =
// (h, w, d) * 0.4 mm. `label_at(y, z)` gives the mid-sagittal drawing; every structure is 24 mm
// wide (|x - 12| < 12).
struct Drawing {
  NdArrayPtr labels;
  Geometry g;
};
Drawing draw(const std::function<int(double y, double z)>& label_at, double y_max, double z_max) {
  const double sp = 0.4;
  const auto H = static_cast<std::int64_t>(24 / sp) + 1, W = static_cast<std::int64_t>(y_max / sp),
             D = static_cast<std::int64_t>(z_max / sp);
  auto a = NdArray::make<std::uint8_t>({D, H, W});
  auto* l = a->data<std::uint8_t>();
  for (std::int64_t d = 0, n = 0; d < D; ++d)
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t w = 0; w < W; ++w, ++n)
        l[n] = static_cast<std::uint8_t>(std::abs(h * sp - 12) < 12 ? label_at(w * sp, d * sp) : 0);
  Drawing dr;
  dr.labels = a;
  dr.g.spacing = {sp, sp, sp};
  dr.g.origin = {0, 0, 0};
  return dr;
}

// Bodies and discs stacked along z, each between a lower and an upper line z = z0 + slope * y
// (y from 5 to 35 mm: anterior border 5, posterior 35, depth 30).
struct Slab {
  int label;
  double lo0, lo_slope, hi0, hi_slope;
};
int label_in(const std::vector<Slab>& slabs, double y, double z) {
  if (y < 5 || y > 35) return 0;
  for (const auto& s : slabs)
    if (z >= s.lo0 + s.lo_slope * (y - 5) && z < s.hi0 + s.hi_slope * (y - 5)) return s.label;
  return 0;
}

// The hand-built spine of the trapezoid test, 40 mm deep and 200 mm tall.
Drawing trapezoid_spine() {
  const double t20 = std::tan(20 / kDeg), t10 = std::tan(10 / kDeg);
  // The sacral plate rises 20 deg toward posterior (sacral slope 20); L5 is a wedge (anterior
  // 16 mm, posterior 25 mm); L4..L2 are 25 mm boxes with 10 mm discs; L1's upper endplate falls
  // 10 deg toward posterior (its normal tilts posterior: lordosis L1-S1 = 10 - (-20) = 30).
  const std::vector<Slab> slabs = {
      {1, 2, 0, 12, t20},        // S, plate from z 12 (anterior) to 12 + 30 tan 20 (posterior)
      {11, 12, t20, 26, 0},      // L5/S
      {2, 26, 0, 42, 0.3},       // L5: 16 mm anterior, 25 mm posterior
      {12, 42, 0.3, 61, 0},      // L4/L5
      {3, 61, 0, 86, 0},         // L4
      {13, 86, 0, 96, 0},        // L3/L4
      {4, 96, 0, 121, 0},        // L3
      {14, 121, 0, 131, 0},      // L2/L3
      {5, 131, 0, 156, 0},       // L2
      {15, 156, 0, 166, 0},      // L1/L2
      {6, 166, 0, 191, -t10},    // L1
      {16, 191, -t10, 198, -t10},  // T12/L1 (the disc above confirms L1's superior endplate)
  };
  return draw([&](double y, double z) { return label_in(slabs, y, z); }, 40, 200);
}
}  // namespace

TEST(Measure, TrapezoidBodiesAndDiscsGiveTheirHeightsRatiosAndAngles) {
  const Drawing dr = trapezoid_spine();
  const auto m = measure_case("trapezoids", *dr.labels, dr.g);

  const auto& L5 = m.level(2);
  EXPECT_NEAR(L5.anterior_height_mm, 16, 0.8);
  EXPECT_NEAR(L5.posterior_height_mm, 25, 0.8);
  EXPECT_NEAR(L5.wedge_ratio, 16.0 / 25, 0.04);
  EXPECT_EQ(L5.height_loss_grade, 2);  // 36 % lower in front: Genant grade 2 (25-40 %)
  EXPECT_NEAR(L5.superior.normal_deg, -std::atan(0.3) * kDeg, 1.0);
  for (int label : {3, 4, 5}) {
    const auto& b = m.level(label);
    EXPECT_NEAR(b.anterior_height_mm, 25, 0.5) << structure_name(label);
    EXPECT_NEAR(b.middle_height_mm, 25, 0.5) << structure_name(label);
    EXPECT_NEAR(b.posterior_height_mm, 25, 0.5) << structure_name(label);
    EXPECT_NEAR(b.ap_depth_mm, 30, 0.5) << structure_name(label);
    EXPECT_EQ(b.height_loss_grade, 0) << structure_name(label);
  }
  const auto& d34 = m.level(13);
  EXPECT_NEAR(d34.middle_height_mm, 10, 0.5);
  EXPECT_NEAR(d34.dhi, 30.0 / 75, 0.02);  // disc heights over the upper body's (L3)
  EXPECT_NEAR(d34.disc_to_body_ratio, 10.0 / 25, 0.02);
  EXPECT_NEAR(d34.farfan_index, 20.0 / 30, 0.03);
  EXPECT_NEAR(m.level(6).superior.normal_deg, 10, 1.0);
  EXPECT_NEAR(m.level(1).superior.normal_deg, -20, 1.0);
  EXPECT_NEAR(m.sacral_slope_deg, 20, 1.0);
  EXPECT_NEAR(m.lordosis_l1_s1_deg, 30, 1.5);
  // Segmental angles between the bodies' mid-planes (the sacrum's: its plate): L5's bisects its
  // tilted superior and flat inferior endplate.
  const double l5_mid = -std::atan(0.3) * kDeg / 2;
  EXPECT_NEAR(m.segmental_deg[0], l5_mid + 20, 1.0);  // L5/S
  EXPECT_NEAR(m.segmental_deg[1], 0 - l5_mid, 1.0);   // L4/L5
  EXPECT_NEAR(m.segmental_deg[2], 0, 1.0);
  for (const auto& l : m.levels) EXPECT_TRUE(l.reliable) << structure_name(l.label) << l.note;
  EXPECT_EQ(m.level(7).voxels, 0);
  EXPECT_EQ(m.level(7).note, "absent");
  EXPECT_TRUE(std::isnan(m.level(7).anterior_height_mm));
}

TEST(Measure, AStructureCutByTheFieldOfViewIsMarkedIncomplete) {
  const std::vector<Slab> slabs = {{2, 0, 0, 25, 0}, {12, 25, 0, 35, 0}, {3, 35, 0, 60, 0}};
  const Drawing dr = draw([&](double y, double z) { return label_in(slabs, y, z); }, 40, 70);
  const auto m = measure_case("cut", *dr.labels, dr.g);
  EXPECT_FALSE(m.level(2).complete);  // L5 starts at the first axial slice
  EXPECT_EQ(m.level(2).note, "touches the volume's edge");
  // Its heights would be those of the part in view: blank, and no Genant grade from them; its
  // superior endplate (in view) stays, the inferior one (the cut) does not.
  EXPECT_TRUE(std::isnan(m.level(2).middle_height_mm));
  EXPECT_TRUE(std::isnan(m.level(2).ap_depth_mm));
  EXPECT_EQ(m.level(2).height_loss_grade, -1);
  EXPECT_TRUE(m.level(2).superior.valid);
  EXPECT_FALSE(m.level(2).inferior.valid);
  EXPECT_TRUE(std::isnan(m.segmental_deg[1]));  // L4/L5: a cut L5 has no mid-plane
  EXPECT_TRUE(m.level(3).complete);
  EXPECT_NEAR(m.level(3).middle_height_mm, 25, 0.5);
}

TEST(Measure, AnEndplateOffTheDiscBesideItMarksBothUnreliable) {
  // The L4/L5 disc's top rises 14 deg toward posterior under L4's flat inferior endplate: a wedge
  // of background between them, as where the networks leave out a corner of a body.
  const std::vector<Slab> slabs = {
      {1, 2, 0, 12, 0},   {11, 12, 0, 26, 0}, {2, 26, 0, 42, 0},  {12, 42, 0, 50, 0.25},
      {3, 58, 0, 83, 0},  {13, 83, 0, 93, 0}, {4, 93, 0, 118, 0}, {14, 118, 0, 126, 0},
  };
  const Drawing dr = draw([&](double y, double z) { return label_in(slabs, y, z); }, 40, 135);
  const auto m = measure_case("gap", *dr.labels, dr.g);
  for (int label : {3, 12}) {
    EXPECT_FALSE(m.level(label).reliable) << structure_name(label);
    EXPECT_THAT(m.level(label).note,
                ::testing::HasSubstr("unreliable: L4 inferior endplate 14 deg off the L4/L5 disc"));
  }
  for (int label : {1, 2, 4, 11, 13, 14})
    EXPECT_TRUE(m.level(label).reliable) << structure_name(label) << ": " << m.level(label).note;
  EXPECT_FALSE(m.segmental_reliable(2));  // L4/L5 rests on L4
}

namespace {
// Compares the measurements of a phantom with the truth synth gives; returns values compared.
int expect_truth(const io::Phantom& ph, const CaseMeasurement& m) {
  int compared = 0;
  auto near = [&](double got, double want, double tol, const std::string& what) {
    if (std::isnan(want)) return;
    ++compared;
    EXPECT_NEAR(got, want, tol) << ph.id << " " << what;
  };
  for (const auto& t : ph.truth) {
    if (!t.complete) continue;
    const auto& l = m.level(t.label);
    const std::string s = structure_name(t.label);
    near(l.anterior_height_mm, t.anterior_height_mm, 1.0, s + " anterior height");
    near(l.middle_height_mm, t.middle_height_mm, 1.0, s + " middle height");
    near(l.posterior_height_mm, t.posterior_height_mm, 1.0, s + " posterior height");
    near(l.ap_depth_mm, t.ap_depth_mm, 1.5, s + " depth");
    near(l.superior.normal_deg, t.superior_deg, 2.0, s + " superior endplate");
    near(l.inferior.normal_deg, t.inferior_deg, 2.0, s + " inferior endplate");
    if (t.label >= 2 && t.label <= 10)
      near(l.wedge_ratio, t.anterior_height_mm / t.posterior_height_mm, 0.08, s + " wedge");
  }
  return compared;
}
}  // namespace

TEST(Measure, TheSacralPlateIsTheSurfaceTheL5SDiscLiesOn) {
  // The sacrum reaches 12 mm behind the disc and its top falls away there (a ragged, rounded
  // corner as in a segmentation); under the disc its plate rises 20 deg toward posterior.
  const double t20 = std::tan(20 / kDeg);
  auto label_at = [&](double y, double z) -> int {
    if (y < 5 || y > 47) return 0;
    const double plate = 12 + t20 * (y - 5) - (y > 33 ? 1.5 * (y - 33) : 0.0);
    if (z >= 2 && z < plate) return 1;
    if (y > 35) return 0;
    if (z >= plate && z < 26) return 11;
    if (z >= 26 && z < 51) return 2;
    return 0;
  };
  const Drawing dr = draw(label_at, 50, 60);
  const auto m = measure_case("plate", *dr.labels, dr.g);
  ASSERT_TRUE(m.level(1).superior.valid);
  EXPECT_NEAR(m.sacral_slope_deg, 20, 1.0);
  EXPECT_NEAR(m.level(1).superior.normal_deg, m.level(11).inferior.normal_deg, 1e-9);
  // Its ends are those of the contact (the disc's borders, y 5 and 35), not the sacrum's (47).
  EXPECT_NEAR(m.level(1).superior.anterior[1], 5, 2.0);
  EXPECT_NEAR(m.level(1).superior.posterior[1], 35, 2.0);
}

namespace {
// Flat structures stacked from z = 2 mm: (label, height) from the bottom up.
std::vector<Slab> stacked(std::initializer_list<std::pair<int, double>> parts) {
  std::vector<Slab> out;
  double z = 2;
  for (const auto& [label, height] : parts) {
    out.push_back({label, z, 0, z + height, 0});
    z += height;
  }
  return out;
}
}  // namespace

TEST(Measure, AGenantCrushIsAgainstTheSmallerNeighbourAndNeedsTheOneAbove) {
  // T11 20 mm, T12 18 mm and L1 28 mm tall (heights grow down the spine): T12 is 25 % below their
  // mean but 10 % below T11, so not graded. L3 at 18 mm between 25 mm bodies is 28 % below both: 2.
  const auto slabs = stacked({{4, 18}, {14, 8}, {5, 25}, {15, 8}, {6, 28}, {16, 8}, {7, 18},
                              {17, 7}, {8, 20}, {18, 8}});
  const Drawing dr = draw([&](double y, double z) { return label_in(slabs, y, z); }, 40, 154);
  auto m = measure_case("crush", *dr.labels, dr.g);
  EXPECT_EQ(m.level(7).height_loss_grade, 0);
  EXPECT_NEAR(m.level(7).posterior_height_mm, 18, 0.5);
  // Without T11 (unreliable), T12 is not held against the larger L1 below it.
  std::array<double, 19> conf, reliable;
  conf.fill(0.9), reliable.fill(1);
  reliable[7] = 0;
  apply_confidence(m, conf, reliable);
  EXPECT_EQ(m.level(7).height_loss_grade, 0);
  EXPECT_FALSE(m.level(8).reliable);
  // (L3 touches the first axial slice there: cut, not graded.) L3 inside the view:
  const auto crushed = stacked({{3, 25}, {13, 8}, {4, 18}, {14, 8}, {5, 25}, {15, 8}});
  const Drawing dc = draw([&](double y, double z) { return label_in(crushed, y, z); }, 40, 100);
  const auto c = measure_case("crush", *dc.labels, dc.g);
  EXPECT_EQ(c.level(4).height_loss_grade, 2);
}

// An L5 lower behind than in front, as L5s are (Ha 27, Hp 20 mm, mean 23.5) under a 26 mm L4: its
// posterior height is 23 % below L4's, its mean height 10 %: no crush.
TEST(Measure, ACrushIsOnMeanHeightsSoAWedgedL5IsNotCrushed) {
  const double s = 7.0 / 30;  // the plate between L5 and its disc above falls 7 mm to posterior
  const std::vector<Slab> slabs = {{1, 2, 0, 12, 0},      {11, 12, 0, 20, 0},   {2, 20, 0, 47, -s},
                                   {12, 47, -s, 57, -s},  {3, 57, -s, 83, -s},  {13, 83, -s, 91, -s},
                                   {4, 91, -s, 117, -s}};
  const Drawing dr = draw([&](double y, double z) { return label_in(slabs, y, z); }, 40, 124);
  const auto m = measure_case("l5", *dr.labels, dr.g);
  const auto& L5 = m.level(2);
  ASSERT_NEAR(L5.posterior_height_mm, 20, 0.8);
  ASSERT_NEAR(L5.anterior_height_mm, 27, 0.8);
  EXPECT_EQ(L5.height_loss_grade, 0);
}

// A grade needs both endplates confirmed by the discs beside them: T9 (no disc above it among the
// 19 structures: unreliable) and a body beside an unreliable disc get none, whatever their wedge.
TEST(Measure, NoGradeWithoutADiscConfirmingEachEndplate) {
  const double w = 9.0 / 30;  // a wedge 9 mm lower in front: 45 % of 20 mm
  const std::vector<Slab> slabs = {{8, 2, 0, 22, 0},   {18, 22, 0, 30, 0},  {9, 30, 0, 50, 0},
                                   {19, 50, 0, 58, 0}, {10, 58, 0, 69, w}};
  const Drawing dr = draw([&](double y, double z) { return label_in(slabs, y, z); }, 40, 86);
  auto m = measure_case("top", *dr.labels, dr.g);
  const auto& T9 = m.level(10);
  ASSERT_LT(T9.wedge_ratio, 0.7);
  EXPECT_EQ(T9.height_loss_grade, -1);
  EXPECT_FALSE(T9.reliable);
  EXPECT_THAT(T9.note, ::testing::HasSubstr("no disc confirms the superior endplate of T9"));
  EXPECT_EQ(m.level(9).height_loss_grade, 0);  // T10, between two discs
  std::array<double, 19> conf, reliable;
  conf.fill(0.9), reliable.fill(1);
  reliable[18] = -1;  // T9/T10's case failed QC
  apply_confidence(m, conf, reliable);
  EXPECT_EQ(m.level(9).height_loss_grade, -1);
  EXPECT_THAT(m.level(9).note, ::testing::HasSubstr("no grade: an endplate no disc confirms"));
  EXPECT_THAT(m.level(19).note, ::testing::HasSubstr("the case failed QC"));
}

TEST(Measure, SyntheticPhantomsMatchTheirTruthInAnyOrientationAndSpacing) {
  io::SynthOptions o;
  o.seed = 7;
  o.fracture_rate = 0.2;
  int compared = 0, fractures = 0;
  for (double spacing : {0.0, 1.5}) {
    o.slice_spacing = spacing;
    o.seated_sacrum = spacing > 0;  // the sacrum on the disc (its plate from the disc), and not
    for (int i = 1; i <= 3; ++i) {
      io::Phantom ph = io::make_phantom(o, i);
      const auto m = measure_case(ph.id, *ph.mask, ph.geometry);
      compared += expect_truth(ph, m);
      for (const auto& t : ph.truth) {
        fractures += t.fracture > 0 && t.complete;
        // The disc above a fracture follows its lowered endplate: the body stays reliable.
        if (t.fracture > 0 && t.complete && t.label != 10) {
          EXPECT_TRUE(m.level(t.label).reliable) << ph.id << " " << m.level(t.label).note;
        }
      }
      // Stored as RAS (axes permuted and flipped): the same values.
      const auto r = io::plan_reorientation(io::axis_codes(ph.geometry), "RAS");
      const std::array<std::int64_t, 3> ijk{ph.mask->dim(1), ph.mask->dim(2), ph.mask->dim(0)};
      const auto m2 = measure_case(ph.id, *io::reorient(*ph.mask, r),
                                   io::reorient(ph.geometry, ijk, r));
      for (int label = 1; label <= kMaxLabel; ++label) {
        const auto &a = m.level(label), &b = m2.level(label);
        if (std::isnan(a.middle_height_mm)) continue;
        // (Equal up to the order of floating-point sums.)
        EXPECT_NEAR(a.middle_height_mm, b.middle_height_mm, 0.01) << ph.id << " " << label;
        EXPECT_NEAR(a.superior.normal_deg, b.superior.normal_deg, 0.01) << ph.id << " " << label;
      }
      EXPECT_NEAR(m.lordosis_l1_s1_deg, m2.lordosis_l1_s1_deg, 0.01);
    }
  }
  EXPECT_GT(compared, 300);
  EXPECT_GT(fractures, 0);
}

TEST(Measure, ReportsRoundTripAndFlagOutliers) {
  io::SynthOptions o;
  o.seed = 3;
  std::vector<CaseMeasurement> cases;
  for (int i = 1; i <= 8; ++i) {
    io::Phantom ph = io::make_phantom(o, i);
    auto m = measure_case(ph.id, *ph.mask, ph.geometry);
    cases.push_back(case_measurement_from_json(case_measurement_to_json(m)));
    EXPECT_EQ(measurements_csv_rows(cases.back()), measurements_csv_rows(m));
    EXPECT_EQ(alignment_csv_row(cases.back()), alignment_csv_row(m));
  }
  cases[2].levels[3].middle_height_mm = 60;  // L3 twice as tall as in any other case
  const auto dir = ::testing::TempDir() + "/measure_reports";
  const auto summary = nlohmann::json::parse(write_measurement_reports(cases, dir));
  bool found = false;
  for (const auto& o : summary["outliers"])
    found |= o["case"] == "Case3" && o["structure"] == "L3" && o["column"] == "middle_height_mm";
  EXPECT_TRUE(found) << summary["outliers"].dump();
  EXPECT_EQ(summary["levels"]["L3"]["middle_height_mm"]["n"], 8);
  // Under 8 cases nothing is flagged: a MAD of a handful of values is noise.
  cases.resize(7);
  const auto small = nlohmann::json::parse(write_measurement_reports(cases, dir));
  EXPECT_TRUE(small["outliers"].empty()) << small["outliers"].dump();
}

TEST(Measure, EveryOutputTakesItsColumnsFromTheOneTable) {
  const std::string header = measurements_csv_header();
  std::size_t at = 0;
  for (const auto& c : measurement_columns()) {  // the CSV's columns, in the table's order
    const std::size_t next = header.find(std::string(",") + c.name + ",", at);
    ASSERT_NE(next, std::string::npos) << c.name;
    at = next + 1;
  }
  io::SynthOptions o;
  const io::Phantom ph = io::make_phantom(o, 1);
  const auto record = nlohmann::json::parse(case_measurement_to_json(
      measure_case(ph.id, *ph.mask, ph.geometry)));
  const auto summary = nlohmann::json::parse(
      write_measurement_reports({measure_case(ph.id, *ph.mask, ph.geometry)},
                                ::testing::TempDir() + "/columns"));
  for (const auto& c : measurement_columns())
    EXPECT_TRUE(record["levels"][5].contains(c.name)) << c.name;
  // summary.json's statistics: only the summarised columns, the heights among them.
  const auto& l5 = summary["levels"]["L5"];
  EXPECT_TRUE(l5.contains("anterior_height_mm"));
  for (auto it = l5.begin(); it != l5.end(); ++it) {
    bool summarised = false;
    for (const auto& c : measurement_columns()) summarised |= c.name == it.key() && c.summarised;
    EXPECT_TRUE(summarised) << it.key();
  }
  // docs/measurements.md's column table is the table's.
  const std::string doc =
      spineparse::read_file(spineparse::testing::source_dir() + "/docs/measurements.md");
  EXPECT_THAT(doc, ::testing::HasSubstr(measurement_columns_markdown()))
      << "docs/measurements.md's \"Columns\" section is out of date; it should read:\n"
      << measurement_columns_markdown();
}

TEST(Measure, LabelMapsFromOtherToolsAreTranslatedOrRefusedByEntry) {
  const auto map = parse_label_map("26:1,120:11,0:0");
  EXPECT_EQ(map[26], 1);
  EXPECT_EQ(map[120], 11);
  EXPECT_EQ(map[5], 0);
  EXPECT_THROW(parse_label_map("26=1"), std::runtime_error);
  EXPECT_THROW(parse_label_map("26:40"), std::runtime_error);
  EXPECT_THROW(parse_label_map("x:1"), std::runtime_error);
}

// The measurement picture of the trapezoid spine (overlay.hpp): 144 x 480 pixels (40 x 200 mm at
// 2.4 px/mm beside 48 px for the names), superior up, anterior left; L3's superior endplate (z
// 121 mm) a yellow line at row ~189 from its anterior to its posterior border (x 60-132), its
// middle height a white line at x ~96 between z 96 and 121, L5 named in red (grade 2); the
// same picture whatever the storage orientation.
TEST(Measure, ThePictureDrawsTheEndplatesAndHeightsWhereTheyAre) {
  const Drawing dr = trapezoid_spine();
  NdArray image(DType::kFloat32, dr.labels->shape());
  for (std::int64_t i = 0; i < image.numel(); ++i)
    image.data<float>()[i] = 10.0f * dr.labels->data<std::uint8_t>()[i];
  const auto m = measure_case("trapezoids", *dr.labels, dr.g);
  const RgbImage p = render_measurement_rgb(image, *dr.labels, dr.g, m, 480);
  ASSERT_EQ(p.w, 144);
  ASSERT_EQ(p.h, 480);
  auto count = [&](int x0, int x1, int y0, int y1, std::array<unsigned char, 3> c) {
    int n = 0;
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x)
        n += std::equal(c.begin(), c.end(), &p.rgb[(static_cast<std::size_t>(y) * p.w + x) * 3]);
    return n;
  };
  const std::array<unsigned char, 3> yellow = {255, 225, 0}, white = {255, 255, 255},
                                     red = {255, 60, 60};
  EXPECT_GE(count(60, 132, 186, 192, yellow), 60);  // L3 superior endplate
  EXPECT_EQ(count(60, 132, 170, 184, yellow), 0);   // inside the L2/L3 disc: no endplate
  EXPECT_GE(count(94, 98, 195, 245, white), 45);    // L3 middle height
  EXPECT_GT(count(0, 59, 330, 420, red), 10);       // "L5 G2" left of L5 (z 26-42)
  EXPECT_EQ(count(0, 143, 0, 479, red) , count(0, 59, 330, 420, red));

  for (const std::string o : {"RAS", "PIL", "SLA"}) {  // other storage orders
    const auto r = io::plan_reorientation(io::axis_codes(dr.g), o);
    const std::array<std::int64_t, 3> ijk{dr.labels->dim(1), dr.labels->dim(2),
                                          dr.labels->dim(0)};
    const Geometry g = io::reorient(dr.g, ijk, r);
    const auto labels = io::reorient(*dr.labels, r), img = io::reorient(image, r);
    const RgbImage q = render_measurement_rgb(*img, *labels, g, measure_case("t", *labels, g), 480);
    ASSERT_EQ(q.w, p.w) << o;
    ASSERT_EQ(q.h, p.h) << o;
    std::size_t same = 0;
    for (std::size_t i = 0; i < p.rgb.size(); i += 3)
      same += std::equal(&p.rgb[i], &p.rgb[i] + 3, &q.rgb[i]);
    EXPECT_GE(static_cast<double>(same) / (p.rgb.size() / 3), 0.995) << o;
  }
}

// Intensities per structure, of the image as given or rescaled to the file's values (as the
// measure stage does for a normalised image): the mean, and the lower median.
TEST(Measure, IntensitiesOfEachStructureWithAndWithoutRescale) {
  auto labels = NdArray::make<std::uint8_t>({1, 2, 3});
  auto image = NdArray::make<float>({1, 2, 3});
  const std::uint8_t l[6] = {3, 3, 0, 3, 12, 12};
  const float x[6] = {1, 4, 100, 2, -1, 0.5f};
  std::copy(l, l + 6, labels->data<std::uint8_t>());
  std::copy(x, x + 6, image->data<float>());
  Geometry g;
  const auto m = measure_case("i", *labels, g, image.get());
  EXPECT_DOUBLE_EQ(m.level(3).mean_intensity, 7.0 / 3);
  EXPECT_DOUBLE_EQ(m.level(3).median_intensity, 2.0);
  EXPECT_DOUBLE_EQ(m.level(12).median_intensity, -1.0);
  const auto r = measure_case("i", *labels, g, image.get(), Rescale{466, 379});
  EXPECT_DOUBLE_EQ(r.level(3).mean_intensity, 7.0 / 3 * 379 + 466);
  EXPECT_DOUBLE_EQ(r.level(12).median_intensity, -379.0 + 466);
  EXPECT_TRUE(std::isnan(r.level(5).mean_intensity));
}
