// Scores on shapes with known answers.
#include <gmock/gmock.h>
#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkPNGImageIO.h>
#include <itkRGBPixel.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "metrics/scores.hpp"
#include "spineparse/files.hpp"
#include "test_util.hpp"

using namespace spineparse;
using namespace spineparse::metrics;

namespace {
std::shared_ptr<NdArray> vol(std::int64_t D, std::int64_t H, std::int64_t W) {
  return NdArray::make<std::uint8_t>({D, H, W});
}
void set(NdArray& a, std::int64_t d, std::int64_t h, std::int64_t w, int l) {
  a.data<std::uint8_t>()[(d * a.dim(1) + h) * a.dim(2) + w] = static_cast<std::uint8_t>(l);
}
void box(NdArray& a, int l, std::int64_t d0, std::int64_t d1, std::int64_t h0, std::int64_t h1,
         std::int64_t w0, std::int64_t w1) {
  for (auto d = d0; d < d1; ++d)
    for (auto h = h0; h < h1; ++h)
      for (auto w = w0; w < w1; ++w) set(a, d, h, w, l);
}
// A ball of radius r mm around the centre, with anisotropic spacing (D, H, W).
void ball(NdArray& a, int l, double r, std::array<double, 3> sp) {
  const double c[3] = {(a.dim(0) - 1) / 2.0, (a.dim(1) - 1) / 2.0, (a.dim(2) - 1) / 2.0};
  for (std::int64_t d = 0; d < a.dim(0); ++d)
    for (std::int64_t h = 0; h < a.dim(1); ++h)
      for (std::int64_t w = 0; w < a.dim(2); ++w) {
        const double x = (d - c[0]) * sp[0], y = (h - c[1]) * sp[1], z = (w - c[2]) * sp[2];
        if (x * x + y * y + z * z <= r * r) set(a, d, h, w, l);
      }
}
const StructureScore& of(const std::vector<StructureScore>& s, int l) { return s.at(l - 1); }
}  // namespace

TEST(Scores, IdenticalMapsScorePerfectly) {
  auto a = vol(6, 20, 20);
  box(*a, 3, 1, 5, 2, 12, 3, 15);
  box(*a, 13, 1, 5, 12, 14, 3, 15);
  auto s = score_case(*a, *a, {4.0, 0.5, 0.5});
  EXPECT_NEAR(of(s, 3).dice, 1.0, 1e-9);  // 1e-10 in the denominator, as the original
  EXPECT_DOUBLE_EQ(of(s, 3).assd_mm, 0.0);
  EXPECT_DOUBLE_EQ(of(s, 13).hd95_mm, 0.0);
  EXPECT_TRUE(std::isnan(of(s, 5).dice));  // absent from both: excluded
  EXPECT_NEAR(case_mean(s, &StructureScore::dice, "all"), 1.0, 1e-9);
}

TEST(Scores, OffsetBoxesHaveAnalyticOverlap) {
  auto g = vol(4, 12, 30), p = vol(4, 12, 30);
  box(*g, 2, 0, 4, 1, 11, 5, 15);  // 4 x 10 x 10
  box(*p, 2, 0, 4, 1, 11, 7, 17);  // shifted by 2 along W
  auto s = score_case(*p, *g, {1, 1, 1});
  EXPECT_NEAR(of(s, 2).dice, 2.0 * 320 / 800, 1e-9);
  EXPECT_NEAR(of(s, 2).precision, 0.8, 1e-9);
  EXPECT_NEAR(of(s, 2).recall, 0.8, 1e-9);
  box(*p, 2, 0, 4, 1, 11, 5, 7);  // prediction now also covers the truth: recall 1
  s = score_case(*p, *g, {1, 1, 1});
  EXPECT_NEAR(of(s, 2).recall, 1.0, 1e-9);
  EXPECT_NEAR(of(s, 2).precision, 400.0 / 480, 1e-9);
}

TEST(Scores, SurfaceDistancesUseTheAnisotropicSpacing) {
  auto g = vol(5, 9, 20), p = vol(5, 9, 20);
  set(*g, 2, 4, 5, 7);
  set(*p, 2, 4, 8, 7);  // 3 voxels along W at 0.7 mm
  set(*g, 1, 4, 4, 9);
  set(*p, 3, 4, 4, 9);  // 2 slices apart at 4 mm
  auto s = score_case(*p, *g, {4.0, 0.5, 0.7});
  EXPECT_NEAR(of(s, 7).assd_mm, 2.1, 1e-5);
  EXPECT_NEAR(of(s, 7).hd95_mm, 2.1, 1e-5);
  EXPECT_DOUBLE_EQ(of(s, 7).dice, 0.0);
  EXPECT_NEAR(of(s, 9).assd_mm, 8.0, 1e-5);
}

TEST(Scores, ConcentricBallsAreTheirRadiusDifferenceApart) {
  const std::array<double, 3> sp = {2.0, 0.5, 0.5};
  auto g = vol(21, 81, 81), p = vol(21, 81, 81);
  ball(*g, 4, 12.0, sp);
  ball(*p, 4, 15.0, sp);
  auto s = score_case(*p, *g, sp);
  EXPECT_NEAR(of(s, 4).assd_mm, 3.0, 0.6);
  EXPECT_NEAR(of(s, 4).hd95_mm, 3.0, 1.2);
  const double vg = 4.0 / 3 * M_PI * 12 * 12 * 12, vp = 4.0 / 3 * M_PI * 15 * 15 * 15;
  EXPECT_NEAR(of(s, 4).dice, 2 * vg / (vg + vp), 0.03);
}

TEST(Scores, MissingAndSpuriousStructures) {
  auto g = vol(3, 10, 10), p = vol(3, 10, 10);
  box(*g, 5, 0, 3, 0, 4, 0, 4);
  box(*p, 6, 0, 3, 5, 9, 5, 9);
  auto s = score_case(*p, *g, {1, 1, 1});
  EXPECT_DOUBLE_EQ(of(s, 5).dice, 0.0);  // missed: counts as 0 in the means
  EXPECT_TRUE(std::isnan(of(s, 5).assd_mm));
  EXPECT_DOUBLE_EQ(of(s, 6).precision, 0.0);  // spurious
  spineparse::testing::TempDir d;
  auto j = nlohmann::json::parse(write_reports({{"CaseA", s, -1}}, d.str()));
  EXPECT_EQ(j["missed_structures"], 1);
  EXPECT_EQ(j["spurious_structures"], 1);
  EXPECT_NEAR(j["dice"]["all"]["mean"].get<double>(), 0.0, 1e-9);
  EXPECT_TRUE(j["assd_mm"]["all"]["mean"].is_null());
  const std::string csv = read_file((d / "cases.csv").string());
  EXPECT_THAT(csv, ::testing::HasSubstr("CaseA,5,L2,0,0,0,,,48,0"));
  EXPECT_THAT(csv, ::testing::HasSubstr("CaseA,6,L1,0,0,0,,,0,48"));
}

TEST(Scores, AggregatesAreMeanAndPopulationStdOverCases) {
  auto g = vol(2, 10, 10), p1 = vol(2, 10, 10), p2 = vol(2, 10, 10);
  box(*g, 1, 0, 2, 0, 10, 0, 5);    // vertebra S
  box(*g, 11, 0, 2, 0, 10, 5, 10);  // disc L5/S
  box(*p1, 1, 0, 2, 0, 10, 0, 5);
  box(*p1, 11, 0, 2, 0, 10, 5, 10);  // perfect
  box(*p2, 1, 0, 2, 0, 10, 0, 5);    // disc missed
  spineparse::testing::TempDir d;
  auto j = nlohmann::json::parse(write_reports(
      {{"A", score_case(*p1, *g, {1, 1, 1}), -1}, {"B", score_case(*p2, *g, {1, 1, 1}), -1}},
      d.str()));
  EXPECT_NEAR(j["dice"]["all"]["mean"].get<double>(), 0.75, 1e-9);  // (1 + 0.5) / 2
  EXPECT_NEAR(j["dice"]["all"]["std"].get<double>(), 0.25, 1e-9);
  EXPECT_NEAR(j["dice"]["vertebrae"]["mean"].get<double>(), 1.0, 1e-9);
  EXPECT_NEAR(j["dice"]["discs"]["mean"].get<double>(), 0.5, 1e-9);
  EXPECT_EQ(j["per_structure"][10]["structure"], "L5/S");
  EXPECT_EQ(j["per_structure"][10]["missed"], 1);
}

#include <itkImageFileReader.h>
#include <itkRGBPixel.h>

#include "io/orientation.hpp"
#include "metrics/overlay.hpp"
#include "metrics/report_html.hpp"

namespace {
// The synthetic cohort's orientation, PIL: file axis H toward posterior, W toward inferior, D
// toward the patient's left (ITK's LPS direction columns).
spineparse::Geometry pil(double sh, double sw, double sd) {
  spineparse::Geometry g;
  g.spacing = {sh, sw, sd};
  g.direction = {0, 0, 1, 1, 0, 0, 0, -1, 0};
  g.origin = {-20.0, 15.0, 60.0};
  return g;
}
}  // namespace

TEST(Overlay, WritesAPngWithTheLabelColours) {
  spineparse::testing::TempDir d;
  auto img = NdArray::make<float>({3, 40, 60});
  for (std::int64_t i = 0; i < img->numel(); ++i)
    img->data<float>()[i] = static_cast<float>(i % 97);
  auto lab = vol(3, 40, 60);
  box(*lab, 12, 0, 3, 10, 30, 20, 40);
  const std::string f = (d / "qc/c.png").string();
  write_overlay_png(f, *img, *lab, pil(1, 1, 1), 120);
  using Image = itk::Image<itk::RGBPixel<unsigned char>, 2>;
  auto r = itk::ImageFileReader<Image>::New();
  r->SetFileName(f);
  r->Update();
  const auto size = r->GetOutput()->GetLargestPossibleRegion().GetSize();
  EXPECT_EQ(size[1], 270u);      // the legend sets the height for small panels
  EXPECT_GE(size[0], 2u * 80u);  // two panels of 80 x 120 (H x W scaled to 120) and a legend
  // A pixel inside the box carries label 12's colour, blended with grey.
  const auto px = r->GetOutput()->GetPixel({{10 + 40, 60}});  // panel column = h * 2, row = w * 2
  const auto c = label_colour(12);
  EXPECT_GT(px[0] + 1, static_cast<int>(0.55 * c[0]));
  EXPECT_GT(px[2] + 1, static_cast<int>(0.55 * c[2]));
}

// The picture is anatomical: the same scan stored in four orientations gives the same bytes,
// superior up and anterior left at the physical aspect ratio.
TEST(Overlay, TheSameScanInFourOrientationsGivesTheSamePicture) {
  const std::int64_t D = 7, H = 30, W = 44;  // PIL: H posterior, W inferior, D left
  auto img = NdArray::make<float>({D, H, W});
  for (std::int64_t d = 0; d < D; ++d)
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t w = 0; w < W; ++w)
        img->data<float>()[(d * H + h) * W + w] = static_cast<float>(d * 7 + h * 3 + w * w % 17);
  auto lab = vol(D, H, W);
  box(*lab, 2, 1, 4, 3, 12, 30, 40);  // an inferior-anterior block, off the middle slice
  box(*lab, 14, 2, 6, 15, 25, 5, 9);  // a superior-posterior one
  const spineparse::Geometry g = pil(0.8, 0.6, 4.0);
  const std::string reference = render_overlay_png(*img, *lab, g, 100);
  for (const char* codes : {"RAS", "LPS", "IPL", "ASR"}) {
    const auto r = spineparse::io::plan_reorientation("PIL", codes);
    const auto img2 = spineparse::io::reorient(*img, r), lab2 = spineparse::io::reorient(*lab, r);
    const auto g2 = spineparse::io::reorient(g, {H, W, D}, r);
    ASSERT_EQ(spineparse::io::axis_codes(g2), codes);
    EXPECT_EQ(render_overlay_png(*img2, *lab2, g2, 100), reference) << codes;
  }
  // Physical aspect: rows span W x 0.6 mm (26.4, the longer side: 100 px), columns H x 0.8 mm
  // (24 mm: 91 px). Anterior (h = 0) is on the left, superior (w = 0) at the top.
  spineparse::testing::TempDir d;
  const std::string f = (d / "qc.png").string();
  spineparse::write_file_atomic(f, reference);
  using Image = itk::Image<itk::RGBPixel<unsigned char>, 2>;
  auto reader = itk::ImageFileReader<Image>::New();
  reader->SetFileName(f);
  reader->Update();
  const Image* out = reader->GetOutput();
  EXPECT_EQ(out->GetLargestPossibleRegion().GetSize()[0], 2u * 91u + 6u + 70u);
  // Panel 2 shows slice d = 2 or 3 (the most labels); label 2's block (h 3..12, w 30..40) lies
  // low and to the left there, label 14's (h 15..25, w 5..9) high and to the right.
  const int x0 = 91 + 6;  // panel 2; voxel (h, w) is at x = h * 91 / 30, y = w * 100 / 44
  const auto low_left = out->GetPixel({{x0 + 7 * 91 / 30, 35 * 100 / 44}});
  const auto high_right = out->GetPixel({{x0 + 20 * 91 / 30, 7 * 100 / 44}});
  const auto c2 = label_colour(2), c14 = label_colour(14);
  auto is_label = [](const itk::RGBPixel<unsigned char>& p, std::array<unsigned char, 3> c) {
    // Blended 0.55 label + 0.45 grey: each channel within the grey part of the label's.
    for (int k = 0; k < 3; ++k)
      if (p[k] < 0.55 * c[k] - 1 || p[k] > 0.55 * c[k] + 0.45 * 255 + 1) return false;
    return true;
  };
  EXPECT_TRUE(is_label(low_left, c2));
  EXPECT_TRUE(is_label(high_right, c14));
}

// report.html inlines the overlays of a small run and links those of a large one, so that the
// page (and the memory to build it) does not grow with the cohort.
TEST(Report, InlinesSmallRunsAndLinksTheOverlaysOfLargeOnes) {
  spineparse::testing::TempDir d;
  auto img = NdArray::make<float>({2, 30, 40});
  auto lab = vol(2, 30, 40);
  box(*lab, 3, 0, 2, 5, 20, 5, 30);
  nlohmann::json run = {{"cases", nlohmann::json::array()}};
  for (const char* id : {"Case1", "Case2"}) {
    const std::string png = (d / ("qc/" + std::string(id) + ".png")).string();
    write_overlay_png(png, *img, *lab, pil(1, 1, 1), 64);
    run["cases"].push_back({{"id", id}, {"status", "ok"}, {"attrs", {{"overlay", png}}}});
  }
  spineparse::write_file_atomic((d / "run.json").string(), run.dump());
  std::string page = spineparse::read_file(write_report_html((d / "run.json").string(), 1 << 20));
  EXPECT_NE(page.find("data:image/png;base64,"), std::string::npos);
  EXPECT_EQ(page.find("\"qc/Case1.png\""), std::string::npos);
  page = spineparse::read_file(
      write_report_html((d / "run.json").string(), 100));  // smaller than two PNGs
  EXPECT_EQ(page.find("data:image/png;base64,"), std::string::npos);
  EXPECT_NE(page.find("\"qc/Case1.png\""), std::string::npos);
  EXPECT_NE(page.find("\"qc/Case2.png\""), std::string::npos);
}

TEST(Scores, ConfusionCountsTrueRowsAgainstPredictedColumns) {
  auto g = vol(1, 4, 10), p = vol(1, 4, 10);
  box(*g, 12, 0, 1, 0, 4, 0, 5);  // L4/L5: 20 voxels
  box(*p, 13, 0, 1, 0, 4, 0, 3);  // 12 of them called L3/L4
  box(*p, 12, 0, 1, 0, 4, 3, 5);  // 8 right
  box(*p, 2, 0, 1, 0, 1, 7, 10);  // 3 background voxels called L5
  std::vector<std::int64_t> c;
  score_case(*p, *g, {1, 1, 1}, false, &c);
  ASSERT_EQ(c.size(), 400u);
  EXPECT_EQ(c[12 * 20 + 13], 12);
  EXPECT_EQ(c[12 * 20 + 12], 8);
  EXPECT_EQ(c[0 * 20 + 2], 3);
  EXPECT_EQ(c[0 * 20 + 0], 17);
  spineparse::testing::TempDir d;
  write_reports({{"A", score_case(*p, *g, {1, 1, 1}, false), -1, c},
                 {"B", score_case(*p, *g, {1, 1, 1}, false), -1, c}},
                d.str());
  std::string text = read_file((d / "confusion.csv").string());
  EXPECT_THAT(text, ::testing::StartsWith("truth\\predicted,background,S,L5,"));
  EXPECT_THAT(text, ::testing::HasSubstr("\nL4/L5,0,0,0,0,0,0,0,0,0,0,0,0,16,24,0,0,0,0,0,0\n"));
}

// ASSD and HD95 against a brute-force search over every pair of surface voxels, on random blobs
// with anisotropic spacing (medpy: 18-neighbourhood surfaces, exact Euclidean distances).
TEST(Scores, SurfaceDistancesMatchABruteForceSearch) {
  const std::array<double, 3> sp = {3.7, 0.45, 0.6};
  std::uint64_t r = 12345;
  auto rnd = [&] {
    r = r * 6364136223846793005ULL + 1442695040888963407ULL;
    return (r >> 33) / double(1ULL << 31);
  };
  // A sagittal stack's few slices, then many (a 3-D scan's), then a tall one whose rows the
  // transform takes in several blocks.
  const std::int64_t shapes[3][3] = {{7, 23, 31}, {40, 23, 13}, {12, 300, 40}};
  for (int trial = 0; trial < 8; ++trial) {
    const std::int64_t* shape = shapes[trial < 4 ? 0 : trial < 6 ? 1 : 2];
    const std::int64_t D = shape[0], H = shape[1], W = shape[2];
    auto g = vol(D, H, W), p = vol(D, H, W);
    for (auto* a :
         {g.get(), p.get()}) {  // a few overlapping boxes each, touching the array's edges too
      for (int b = 0; b < 3; ++b) {
        const std::int64_t d0 = static_cast<std::int64_t>(rnd() * D),
                           h0 = static_cast<std::int64_t>(rnd() * H),
                           w0 = static_cast<std::int64_t>(rnd() * W);
        box(*a, 8, d0, std::min(D, d0 + 1 + static_cast<std::int64_t>(rnd() * 4)), h0,
            std::min(H, h0 + 2 + static_cast<std::int64_t>(rnd() * 10)), w0,
            std::min(W, w0 + 2 + static_cast<std::int64_t>(rnd() * 12)));
      }
    }
    auto surf = [&](const NdArray& a) {
      std::vector<std::array<std::int64_t, 3>> s;
      auto in = [&](std::int64_t d, std::int64_t h, std::int64_t w) {
        return d >= 0 && h >= 0 && w >= 0 && d < D && h < H && w < W &&
               a.data<std::uint8_t>()[(d * H + h) * W + w] == 8;
      };
      for (std::int64_t d = 0; d < D; ++d)
        for (std::int64_t h = 0; h < H; ++h)
          for (std::int64_t w = 0; w < W; ++w) {
            if (!in(d, h, w)) continue;
            bool border = false;
            for (int x = -1; x <= 1; ++x)
              for (int y = -1; y <= 1; ++y)
                for (int z = -1; z <= 1; ++z)
                  if (std::abs(x) + std::abs(y) + std::abs(z) <= 2 && !in(d + x, h + y, w + z))
                    border = true;
            if (border) s.push_back({d, h, w});
          }
      return s;
    };
    auto directed = [&](const auto& from, const auto& to) {
      std::vector<double> out;
      for (const auto& a : from) {
        double best = 1e300;
        for (const auto& b : to) {
          double s = 0;
          for (int i = 0; i < 3; ++i) s += std::pow((a[i] - b[i]) * sp[i], 2);
          best = std::min(best, s);
        }
        out.push_back(std::sqrt(best));
      }
      return out;
    };
    const auto sg = surf(*g), spd = surf(*p);
    const auto a = directed(spd, sg), c = directed(sg, spd);
    auto mean = [](const std::vector<double>& v) {
      double s = 0;
      for (double x : v) s += x;
      return s / v.size();
    };
    auto p95 = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      const double pos = 0.95 * (v.size() - 1);
      const std::size_t i = static_cast<std::size_t>(pos);
      return i + 1 < v.size() ? v[i] + (pos - i) * (v[i + 1] - v[i]) : v[i];
    };
    const auto s = score_case(*p, *g, sp);
    EXPECT_NEAR(of(s, 8).assd_mm, (mean(a) + mean(c)) / 2, 1e-9) << "trial " << trial;
    EXPECT_NEAR(of(s, 8).hd95_mm, std::max(p95(a), p95(c)), 1e-9) << "trial " << trial;
  }
}

TEST(Overlay, PngEncodedInMemoryDecodesToTheSamePixels) {
  const int w = 37, h = 11;
  std::vector<unsigned char> rgb(static_cast<std::size_t>(w) * h * 3);
  for (std::size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<unsigned char>((i * 31) % 251);
  spineparse::testing::TempDir d;
  const std::string f = (d / "x.png").string();
  spineparse::write_file_atomic(f, spineparse::metrics::encode_png_rgb(w, h, rgb));
  using Image = itk::Image<itk::RGBPixel<unsigned char>, 2>;
  auto reader = itk::ImageFileReader<Image>::New();
  reader->SetFileName(f);
  reader->SetImageIO(itk::PNGImageIO::New());
  reader->Update();
  const auto size = reader->GetOutput()->GetLargestPossibleRegion().GetSize();
  ASSERT_EQ(size[0], static_cast<unsigned>(w));
  ASSERT_EQ(size[1], static_cast<unsigned>(h));
  const auto* px = reinterpret_cast<const unsigned char*>(reader->GetOutput()->GetBufferPointer());
  EXPECT_TRUE(std::equal(rgb.begin(), rgb.end(), px));
}
