#include "scores.hpp"

#include <itkImage.h>
#include <itkSignedMaurerDistanceMapImageFilter.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "spineparse/files.hpp"
#include "spineparse/labels.hpp"

namespace spineparse::metrics {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Box {
  std::int64_t lo[3] = {INT64_MAX, INT64_MAX, INT64_MAX}, hi[3] = {-1, -1, -1};
  void add(std::int64_t d, std::int64_t h, std::int64_t w) {
    const std::int64_t p[3] = {d, h, w};
    for (int i = 0; i < 3; ++i) lo[i] = std::min(lo[i], p[i]), hi[i] = std::max(hi[i], p[i]);
  }
};

// Surface voxels of `label` inside box b (box coordinates), 18-neighbourhood, outside the array = background.
std::vector<unsigned char> surface(const std::uint8_t* v, const std::int64_t dims[3], const Box& b, int label) {
  const std::int64_t n0 = b.hi[0] - b.lo[0] + 1, n1 = b.hi[1] - b.lo[1] + 1, n2 = b.hi[2] - b.lo[2] + 1;
  std::vector<unsigned char> s(n0 * n1 * n2, 0);
  auto at = [&](std::int64_t d, std::int64_t h, std::int64_t w) -> bool {
    if (d < 0 || h < 0 || w < 0 || d >= dims[0] || h >= dims[1] || w >= dims[2]) return false;
    return v[(d * dims[1] + h) * dims[2] + w] == label;
  };
  for (std::int64_t i = 0; i < n0; ++i)
    for (std::int64_t j = 0; j < n1; ++j)
      for (std::int64_t k = 0; k < n2; ++k) {
        const std::int64_t d = b.lo[0] + i, h = b.lo[1] + j, w = b.lo[2] + k;
        if (!at(d, h, w)) continue;
        bool border = false;
        for (int a = -1; a <= 1 && !border; ++a)
          for (int c = -1; c <= 1 && !border; ++c)
            for (int e = -1; e <= 1 && !border; ++e) {
              if (std::abs(a) + std::abs(c) + std::abs(e) == 3 || (a == 0 && c == 0 && e == 0)) continue;  // 18-nbhd
              if (!at(d + a, h + c, w + e)) border = true;
            }
        s[(i * n1 + j) * n2 + k] = border;
      }
  return s;
}

// Distances (mm) from every `from` surface voxel to the nearest `to` surface voxel.
std::vector<double> directed(const std::vector<unsigned char>& from, const std::vector<unsigned char>& to,
                             const std::int64_t n[3], const std::array<double, 3>& sp) {
  using Image = itk::Image<unsigned char, 3>;
  auto img = Image::New();
  Image::RegionType region;
  Image::SizeType size = {{static_cast<itk::SizeValueType>(n[2]), static_cast<itk::SizeValueType>(n[1]),
                           static_cast<itk::SizeValueType>(n[0])}};
  region.SetSize(size);
  img->SetRegions(region);
  img->Allocate();
  Image::SpacingType spacing;
  spacing[0] = sp[2];
  spacing[1] = sp[1];
  spacing[2] = sp[0];
  img->SetSpacing(spacing);
  std::copy(to.begin(), to.end(), img->GetBufferPointer());
  using Filter = itk::SignedMaurerDistanceMapImageFilter<Image, itk::Image<float, 3>>;
  auto f = Filter::New();
  f->SetInput(img);
  f->SetUseImageSpacing(true);
  f->SetSquaredDistance(false);
  f->SetInsideIsPositive(false);
  f->SetBackgroundValue(0);
  f->SetNumberOfWorkUnits(1);
  f->Update();
  const float* dist = f->GetOutput()->GetBufferPointer();
  std::vector<double> out;
  for (std::size_t i = 0; i < from.size(); ++i) {
    if (from[i]) out.push_back(std::max(0.0f, dist[i]));  // on a `to` voxel: 0
  }
  return out;
}

double percentile95(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const double pos = 0.95 * (v.size() - 1);
  const std::size_t i = static_cast<std::size_t>(pos);
  const double f = pos - i;
  return i + 1 < v.size() ? v[i] * (1 - f) + v[i + 1] * f : v[i];
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? kNaN : s / v.size();
}

}  // namespace

std::vector<StructureScore> score_case(const NdArray& pred, const NdArray& truth, std::array<double, 3> sp,
                                       bool distances, std::vector<std::int64_t>* confusion) {
  if (pred.shape() != truth.shape()) {
    throw std::runtime_error("prediction is " + pred.shape_string() + ", truth " + truth.shape_string());
  }
  const std::int64_t dims[3] = {pred.dim(0), pred.dim(1), pred.dim(2)};
  const std::uint8_t* P = pred.data<std::uint8_t>();
  const std::uint8_t* G = truth.data<std::uint8_t>();
  std::int64_t tp[kNumClasses] = {0}, np[kNumClasses] = {0}, ng[kNumClasses] = {0};
  Box box[kNumClasses];
  std::int64_t* conf = nullptr;
  if (confusion) {
    confusion->assign(kNumClasses * kNumClasses, 0);
    conf = confusion->data();
  }
  for (std::int64_t d = 0, i = 0; d < dims[0]; ++d)
    for (std::int64_t h = 0; h < dims[1]; ++h)
      for (std::int64_t w = 0; w < dims[2]; ++w, ++i) {
        const int p = P[i] < kNumClasses ? P[i] : 0, g = G[i] < kNumClasses ? G[i] : 0;
        ++np[p];
        ++ng[g];
        if (p == g) ++tp[p];
        if (conf) ++conf[g * kNumClasses + p];
        if (p) box[p].add(d, h, w);
        if (g) box[g].add(d, h, w);
      }
  std::vector<StructureScore> out;
  const double eps = 1e-10;
  for (int l = 1; l <= kMaxLabel; ++l) {
    StructureScore s;
    s.label = l;
    s.truth_voxels = ng[l];
    s.pred_voxels = np[l];
    s.assd_mm = s.hd95_mm = kNaN;
    if (ng[l] == 0 && np[l] == 0) {
      s.dice = s.precision = s.recall = kNaN;
      out.push_back(s);
      continue;
    }
    const double TP = tp[l], FP = np[l] - tp[l], FN = ng[l] - tp[l];
    s.dice = 2 * TP / (2 * TP + FP + FN + eps);
    s.precision = TP / (TP + FP + eps);
    s.recall = TP / (TP + FN + eps);
    if (distances && ng[l] > 0 && np[l] > 0) {
      const Box& b = box[l];
      const std::int64_t n[3] = {b.hi[0] - b.lo[0] + 1, b.hi[1] - b.lo[1] + 1, b.hi[2] - b.lo[2] + 1};
      auto sp_ = surface(P, dims, b, l), sg = surface(G, dims, b, l);
      auto a = directed(sp_, sg, n, sp), c = directed(sg, sp_, n, sp);
      s.assd_mm = (mean(a) + mean(c)) / 2;
      s.hd95_mm = std::max(percentile95(a), percentile95(c));
    }
    out.push_back(s);
  }
  return out;
}

double case_mean(const std::vector<StructureScore>& s, double StructureScore::*field, const std::string& which) {
  double sum = 0;
  int n = 0;
  for (const auto& x : s) {
    const bool take = which == "all" || (which == "vertebrae" && is_vertebra(x.label)) || (which == "discs" && is_disc(x.label));
    if (take && !std::isnan(x.*field)) sum += x.*field, ++n;
  }
  return n ? sum / n : kNaN;
}

namespace {
json stats(const std::vector<double>& v) {
  std::vector<double> ok;
  for (double x : v) {
    if (!std::isnan(x)) ok.push_back(x);
  }
  if (ok.empty()) return {{"mean", nullptr}, {"std", nullptr}, {"n", 0}};
  double m = 0;
  for (double x : ok) m += x;
  m /= ok.size();
  double var = 0;
  for (double x : ok) var += (x - m) * (x - m);
  return {{"mean", m}, {"std", std::sqrt(var / ok.size())}, {"n", ok.size()}};  // population std, as numpy
}
std::string fmt(double v) {
  if (std::isnan(v)) return "";
  std::ostringstream s;
  s.precision(6);
  s << v;
  return s.str();
}
}  // namespace

std::string write_reports(const std::vector<CaseScores>& cases, const std::string& folder, int failed_cases) {
  std::ostringstream csv;
  csv << "case,label,structure,dice,precision,recall,assd_mm,hd95_mm,truth_voxels,pred_voxels\n";
  for (const auto& c : cases) {
    for (const auto& s : c.structures) {
      if (s.truth_voxels == 0 && s.pred_voxels == 0) continue;
      csv << c.id << "," << s.label << "," << structure_name(s.label) << "," << fmt(s.dice) << "," << fmt(s.precision)
          << "," << fmt(s.recall) << "," << fmt(s.assd_mm) << "," << fmt(s.hd95_mm) << "," << s.truth_voxels << ","
          << s.pred_voxels << "\n";
    }
  }
  json j;
  j["cases_scored"] = cases.size();
  j["cases_failed"] = failed_cases;
  j["definitions"] = "Dice, precision, recall as the original (spec 7.2): structures absent from both sides excluded; "
                     "per case the mean over present structures, then mean and population std over cases. "
                     "ASSD and HD95 in mm need the structure on both sides; missed = in the truth only, spurious = predicted only.";
  const std::pair<const char*, double StructureScore::*> fields[] = {
      {"dice", &StructureScore::dice}, {"precision", &StructureScore::precision}, {"recall", &StructureScore::recall},
      {"assd_mm", &StructureScore::assd_mm}, {"hd95_mm", &StructureScore::hd95_mm}};
  for (const auto& [name, field] : fields) {
    json g;
    for (const char* which : {"vertebrae", "discs", "all"}) {
      std::vector<double> per_case;
      for (const auto& c : cases) per_case.push_back(case_mean(c.structures, field, which));
      g[which] = stats(per_case);
    }
    j[name] = g;
  }
  json per = json::array();
  int missed = 0, spurious = 0;
  for (int l = 1; l <= kMaxLabel; ++l) {
    json e = {{"label", l}, {"structure", structure_name(l)}};
    int present = 0, m = 0, sp = 0;
    for (const auto& [name, field] : fields) {
      std::vector<double> v;
      for (const auto& c : cases) v.push_back(c.structures[l - 1].*field);
      e[name] = stats(v);
    }
    for (const auto& c : cases) {
      const auto& s = c.structures[l - 1];
      present += s.truth_voxels > 0;
      m += s.truth_voxels > 0 && s.pred_voxels == 0;
      sp += s.truth_voxels == 0 && s.pred_voxels > 0;
    }
    e["cases_with_structure"] = present;
    e["missed"] = m;
    e["spurious"] = sp;
    missed += m;
    spurious += sp;
    per.push_back(e);
  }
  j["per_structure"] = per;
  j["missed_structures"] = missed;
  j["spurious_structures"] = spurious;
  std::vector<double> before, after;
  for (const auto& c : cases) {
    if (c.dice_before >= 0) {
      before.push_back(c.dice_before);
      after.push_back(case_mean(c.structures, &StructureScore::dice, "all"));
    }
  }
  if (!before.empty()) j["refinement"] = {{"dice_before", stats(before)}, {"dice_after", stats(after)}};
  const std::string text = j.dump(2) + "\n";
  std::vector<std::int64_t> conf(kNumClasses * kNumClasses, 0);
  bool any_conf = false;
  for (const auto& c : cases) {
    if (c.confusion.size() != conf.size()) continue;
    any_conf = true;
    for (std::size_t i = 0; i < conf.size(); ++i) conf[i] += c.confusion[i];
  }
  if (any_conf) {
    std::ostringstream cm;
    cm << "truth\\predicted";
    for (int p = 0; p < kNumClasses; ++p) cm << "," << structure_name(p);
    cm << "\n";
    for (int g = 0; g < kNumClasses; ++g) {
      cm << structure_name(g);
      for (int p = 0; p < kNumClasses; ++p) cm << "," << conf[g * kNumClasses + p];
      cm << "\n";
    }
    write_file_atomic((fs::path(folder) / "confusion.csv").string(), cm.str());
  }
  write_file_atomic((fs::path(folder) / "cases.csv").string(), csv.str());
  write_file_atomic((fs::path(folder) / "summary.json").string(), text);
  return text;
}

}  // namespace spineparse::metrics
