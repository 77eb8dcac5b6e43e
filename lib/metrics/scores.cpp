#include "metrics/scores.hpp"

#include <tbb/parallel_for.h>
#include <tbb/parallel_invoke.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "spine/labels.hpp"
#include "spineparse/files.hpp"
#include "spineparse/text.hpp"

namespace spineparse::metrics {

std::array<double, 3> spacing_dhw(const Geometry& g) {
  return {g.spacing[2], g.spacing[0], g.spacing[1]};
}
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

// Surface voxels of `label` inside box b (box coordinates): label voxels with a non-label voxel in
// their 18-neighbourhood, outside the array counting as background (medpy: the label XOR its
// binary erosion with connectivity 2, border value 0). The box holds every voxel of the label in
// both maps, so a neighbour outside it is never the label: a zero-padded copy of the box needs no
// bounds checks, and each row is a few branch-free passes the compiler vectorises.
std::vector<unsigned char> surface(const std::uint8_t* v, const std::int64_t dims[3], const Box& b,
                                   int label) {
  const std::int64_t n0 = b.hi[0] - b.lo[0] + 1, n1 = b.hi[1] - b.lo[1] + 1,
                     n2 = b.hi[2] - b.lo[2] + 1;
  const std::int64_t p1 = n1 + 2, p2 = n2 + 2;
  std::vector<unsigned char> m((n0 + 2) * p1 * p2, 0);
  for (std::int64_t i = 0; i < n0; ++i)
    for (std::int64_t j = 0; j < n1; ++j) {
      const std::uint8_t* row = v + ((b.lo[0] + i) * dims[1] + b.lo[1] + j) * dims[2] + b.lo[2];
      unsigned char* out = &m[((i + 1) * p1 + j + 1) * p2 + 1];
      for (std::int64_t k = 0; k < n2; ++k) out[k] = row[k] == label;
    }
  std::int64_t offsets[18];
  int n = 0;
  for (int a = -1; a <= 1; ++a)
    for (int c = -1; c <= 1; ++c)
      for (int e = -1; e <= 1; ++e) {
        const int l1 = std::abs(a) + std::abs(c) + std::abs(e);
        if (l1 == 0 || l1 == 3) continue;  // the 18-neighbourhood
        offsets[n++] = (a * p1 + c) * p2 + e;
      }
  std::vector<unsigned char> s(n0 * n1 * n2, 0);
  for (std::int64_t i = 0; i < n0; ++i)
    for (std::int64_t j = 0; j < n1; ++j) {
      const unsigned char* q = &m[((i + 1) * p1 + j + 1) * p2 + 1];
      unsigned char* out = &s[(i * n1 + j) * n2];
      for (std::int64_t k = 0; k < n2; ++k) out[k] = q[k];  // then: AND of the neighbours
      for (int o = 0; o < 18; ++o) {
        const unsigned char* nb = q + offsets[o];
        for (std::int64_t k = 0; k < n2; ++k) out[k] &= nb[k];
      }
      for (std::int64_t k = 0; k < n2; ++k) out[k] = q[k] & (out[k] ^ 1);
    }
  return s;
}

constexpr double kInf = std::numeric_limits<double>::infinity();

// Exact squared Euclidean distance transform of one line in place (Felzenszwalb & Huttenlocher,
// "Distance transforms of sampled functions"): f[p] = min_q ((p - q) * step)^2 + f[q].
// v, z: scratch of n and n + 1 entries.
void edt_line(double* f, std::int64_t n, double step, std::int64_t* v, double* z, double* out) {
  std::int64_t k = -1;
  for (std::int64_t q = 0; q < n; ++q) {
    if (f[q] == kInf) continue;
    const double xq = q * step;
    double s = -kInf;
    while (k >= 0) {
      const double xr = v[k] * step;
      s = ((f[q] + xq * xq) - (f[v[k]] + xr * xr)) / (2 * (xq - xr));
      if (s <= z[k])
        --k;
      else
        break;
    }
    if (k < 0) s = -kInf;
    v[++k] = q;
    z[k] = s;
  }
  if (k < 0) return;  // no site on this line: all infinite
  z[k + 1] = kInf;
  std::int64_t j = 0;
  for (std::int64_t p = 0; p < n; ++p) {
    const double xp = p * step;
    while (z[j + 1] < xp) ++j;
    const double d = xp - v[j] * step;
    out[p] = d * d + f[v[j]];
  }
  std::copy(out, out + n, f);
}

// The first pass along the slices, on the binary `to` (sites 0, the rest infinite), for the
// plane offsets [begin, end): each voxel's squared distance to the nearest site on its line,
// (p * step - q * step)^2 as edt_line writes it, infinite without one. Computed slice by slice
// with the position of the nearest site above, then below, carried along in `site` (end - begin
// entries): contiguous and branch-free (the lines themselves are a plane apart in memory).
void slice_pass(const std::vector<unsigned char>& to, std::int64_t slices, std::int64_t plane,
                std::int64_t begin, std::int64_t end, double step, double* g, double* site) {
  for (int pass = 0; pass < 2; ++pass) {  // the nearest site above, then below
    std::fill(site, site + (end - begin), pass == 0 ? -kInf : kInf);
    for (std::int64_t n = 0; n < slices; ++n) {
      const std::int64_t i = pass == 0 ? n : slices - 1 - n;
      const unsigned char* t = &to[i * plane + begin];
      double* __restrict out = g + i * plane + begin;
      double* __restrict at = site;
      const double xp = static_cast<double>(i) * step;
      for (std::int64_t k = 0; k < end - begin; ++k) {
        at[k] = t[k] ? xp : at[k];
        const double d = xp - at[k];
        out[k] = pass == 0 ? d * d : std::min(out[k], d * d);
      }
    }
  }
}

// The passes along D and W of rows [j0, j1) of every slice, on g [n0, n1, n2]; together, so
// that the block (about 256 KB) stays in cache between them.
void slice_and_row_passes(const std::vector<unsigned char>& to, const std::int64_t n[3],
                          const std::array<double, 3>& sp, std::int64_t j0, std::int64_t j1,
                          double* g, double* site, std::int64_t* v, double* z, double* out) {
  const std::int64_t plane = n[1] * n[2];
  if (n[0] > 1) {
    slice_pass(to, n[0], plane, j0 * n[2], j1 * n[2], sp[0], g, site);
  } else {
    for (std::int64_t k = j0 * n[2]; k < j1 * n[2]; ++k) g[k] = to[k] ? 0.0 : kInf;
  }
  for (std::int64_t i = 0; i < n[0]; ++i)
    for (std::int64_t j = j0; j < j1; ++j)
      edt_line(&g[i * plane + j * n[2]], n[2], sp[2], v, z, out);
}

// The pass along H of the lines marked in `needed` (per slice and column), on g [n0, n1, n2]:
// kLines neighbouring columns at a time, copied out row by row (a cache line per row rather than
// one per line and row) and back after each line's edt_line.
void h_pass(double* g, const std::int64_t n[3], double step,
            const std::vector<unsigned char>& needed) {
  constexpr std::int64_t kLines = 8;
  const std::int64_t H = n[1], W = n[2];
  std::vector<double> lines(static_cast<std::size_t>(kLines * H)), out(H), z(H + 1);
  std::vector<std::int64_t> v(H);
  for (std::int64_t i = 0; i < n[0]; ++i)
    for (std::int64_t k0 = 0; k0 < W; k0 += kLines) {
      const unsigned char* need = &needed[i * W + k0];
      const std::int64_t m = std::min(kLines, W - k0);
      if (std::none_of(need, need + m, [](unsigned char c) { return c != 0; })) continue;
      double* base = g + i * H * W + k0;
      for (std::int64_t t = 0; t < H; ++t)
        for (std::int64_t b = 0; b < m; ++b) lines[b * H + t] = base[t * W + b];
      for (std::int64_t b = 0; b < m; ++b)
        if (need[b]) edt_line(&lines[b * H], H, step, v.data(), z.data(), out.data());
      for (std::int64_t t = 0; t < H; ++t)
        for (std::int64_t b = 0; b < m; ++b) base[t * W + b] = lines[b * H + t];
    }
}

// Distances (mm) from every `from` surface voxel to the nearest `to` surface voxel: the exact
// Euclidean distance transform of the `to` voxels with the voxel spacing (scipy's
// distance_transform_edt, as medpy's assd uses), one separable pass per axis: the slices first,
// then W (contiguous), then H only along the lines that hold a `from` voxel (the only values
// read).
std::vector<double> directed(const std::vector<unsigned char>& from,
                             const std::vector<unsigned char>& to, const std::int64_t n[3],
                             const std::array<double, 3>& sp) {
  const std::int64_t N = n[0] * n[1] * n[2];
  const std::int64_t longest = std::max({n[0], n[1], n[2]});
  std::unique_ptr<double[]> owned(new double[N]);  // every value written by the first pass
  double* g = owned.get();
  std::vector<double> out(longest), z(longest + 1);
  std::vector<std::int64_t> v(longest);
  const std::int64_t rows = std::max<std::int64_t>(1, (32 << 10) / (n[0] * n[2]));
  std::vector<double> site(static_cast<std::size_t>(rows * n[2]));
  for (std::int64_t j0 = 0; j0 < n[1]; j0 += rows)
    slice_and_row_passes(to, n, sp, j0, std::min(n[1], j0 + rows), g, site.data(), v.data(),
                         z.data(), out.data());
  std::vector<unsigned char> needed(n[0] * n[2], 0);  // lines along H holding a `from` voxel
  std::int64_t count = 0;
  for (std::int64_t i = 0; i < n[0]; ++i)
    for (std::int64_t j = 0; j < n[1]; ++j) {
      const unsigned char* f = &from[(i * n[1] + j) * n[2]];
      unsigned char* need = &needed[i * n[2]];
      for (std::int64_t k = 0; k < n[2]; ++k) need[k] |= f[k], count += f[k];
    }
  h_pass(g, n, sp[1], needed);
  std::vector<double> d;
  d.reserve(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < N; ++i)
    if (from[i]) d.push_back(std::sqrt(g[i]));
  return d;
}

// The (true, predicted) voxel counts (labels past kMaxLabel count as background) and each
// label's box over both maps. Rows of background in both, most of a scan, are counted in one
// vectorised pass; only the others are visited voxel by voxel.
void count_voxels(const std::uint8_t* P, const std::uint8_t* G, const std::int64_t dims[3],
                  std::vector<std::int64_t>* confusion, Box box[kNumClasses]) {
  confusion->assign(kNumClasses * kNumClasses, 0);
  std::int64_t* conf = confusion->data();
  std::int64_t wlo[kNumClasses], whi[kNumClasses], background = 0;
  std::fill(wlo, wlo + kNumClasses, INT64_MAX);
  std::fill(whi, whi + kNumClasses, -1);
  const std::int64_t W = dims[2];
  for (std::int64_t d = 0; d < dims[0]; ++d)
    for (std::int64_t h = 0; h < dims[1]; ++h) {
      const std::uint8_t* pr = P + (d * dims[1] + h) * W;
      const std::uint8_t* gr = G + (d * dims[1] + h) * W;
      std::int64_t labelled = 0;
      for (std::int64_t w = 0; w < W; ++w) labelled += (pr[w] | gr[w]) != 0;
      background += W - labelled;
      if (labelled == 0) continue;
      std::uint32_t in_row = 0;
      for (std::int64_t w = 0; w < W; ++w) {
        if ((pr[w] | gr[w]) == 0) continue;
        const int p = pr[w] < kNumClasses ? pr[w] : 0, g = gr[w] < kNumClasses ? gr[w] : 0;
        ++conf[g * kNumClasses + p];
        for (const int l : {p, g}) {
          if (!l) continue;
          wlo[l] = std::min(wlo[l], w);
          whi[l] = std::max(whi[l], w);
          in_row |= 1u << l;
        }
      }
      for (int l = 1; l < kNumClasses; ++l)
        if (in_row & (1u << l)) box[l].add(d, h, wlo[l]);
    }
  conf[0] += background;
  for (int l = 1; l < kNumClasses; ++l)
    if (whi[l] >= 0) box[l].lo[2] = wlo[l], box[l].hi[2] = whi[l];
}

// numpy's percentile(v, 95) with linear interpolation.
double percentile95(std::vector<double> v) {
  const double pos = 0.95 * (v.size() - 1);
  const std::size_t i = static_cast<std::size_t>(pos);
  const double f = pos - i;
  std::nth_element(v.begin(), v.begin() + i, v.end());
  if (i + 1 >= v.size()) return v[i];
  const double next = *std::min_element(v.begin() + i + 1, v.end());
  return v[i] * (1 - f) + next * f;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? kNaN : s / v.size();
}

}  // namespace

std::vector<StructureScore> score_case(const NdArray& pred, const NdArray& truth,
                                       std::array<double, 3> sp, bool distances,
                                       std::vector<std::int64_t>* confusion) {
  if (pred.shape() != truth.shape()) {
    throw std::runtime_error("prediction is " + pred.shape_string() + ", truth " +
                             truth.shape_string());
  }
  const std::int64_t dims[3] = {pred.dim(0), pred.dim(1), pred.dim(2)};
  std::vector<std::int64_t> local;
  if (!confusion) confusion = &local;
  Box box[kNumClasses];
  count_voxels(pred.data<std::uint8_t>(), truth.data<std::uint8_t>(), dims, confusion, box);
  const std::uint8_t* P = pred.data<std::uint8_t>();
  const std::uint8_t* G = truth.data<std::uint8_t>();
  std::int64_t tp[kNumClasses] = {0}, np[kNumClasses] = {0}, ng[kNumClasses] = {0};
  for (int g = 0; g < kNumClasses; ++g)
    for (int p = 0; p < kNumClasses; ++p) {
      const std::int64_t c = (*confusion)[g * kNumClasses + p];
      np[p] += c;
      ng[g] += c;
      if (p == g) tp[p] += c;
    }
  // Each structure is scored on its own (in parallel where a core is free), in label order.
  std::vector<StructureScore> out(kMaxLabel);
  tbb::parallel_for(1, kMaxLabel + 1, [&](int l) {
    StructureScore& s = out[static_cast<std::size_t>(l - 1)];
    s.label = l;
    s.truth_voxels = ng[l];
    s.pred_voxels = np[l];
    s.assd_mm = s.hd95_mm = kNaN;
    if (ng[l] == 0 && np[l] == 0) {
      s.dice = s.precision = s.recall = kNaN;
      return;
    }
    const double eps = 1e-10;
    const double TP = tp[l], FP = np[l] - tp[l], FN = ng[l] - tp[l];
    s.dice = 2 * TP / (2 * TP + FP + FN + eps);
    s.precision = TP / (TP + FP + eps);
    s.recall = TP / (TP + FN + eps);
    if (distances && ng[l] > 0 && np[l] > 0) {
      const Box& b = box[l];
      const std::int64_t n[3] = {b.hi[0] - b.lo[0] + 1, b.hi[1] - b.lo[1] + 1,
                                 b.hi[2] - b.lo[2] + 1};
      // Each side's surface, then each direction, in parallel where a core is free.
      std::vector<unsigned char> sp_, sg;
      tbb::parallel_invoke([&] { sp_ = surface(P, dims, b, l); },
                           [&] { sg = surface(G, dims, b, l); });
      std::vector<double> a, c;
      tbb::parallel_invoke([&] { a = directed(sp_, sg, n, sp); },
                           [&] { c = directed(sg, sp_, n, sp); });
      s.assd_mm = (mean(a) + mean(c)) / 2;
      s.hd95_mm = std::max(percentile95(a), percentile95(c));
    }
  });
  return out;
}

double case_mean(const std::vector<StructureScore>& s, double StructureScore::*field,
                 const std::string& which) {
  double sum = 0;
  int n = 0;
  for (const auto& x : s) {
    const bool take = which == "all" || (which == "vertebrae" && is_vertebra(x.label)) ||
                      (which == "discs" && is_disc(x.label));
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
  return {{"mean", m},
          {"std", std::sqrt(var / ok.size())},
          {"n", ok.size()}};  // population std, as numpy
}
std::string fmt(double v) {
  if (std::isnan(v)) return "";
  std::ostringstream s;
  s.precision(6);
  s << v;
  return s.str();
}
}  // namespace

std::string case_scores_to_json(const CaseScores& c) {
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  json s = json::array();
  for (const auto& t : c.structures)
    s.push_back({{"label", t.label},
                 {"dice", num(t.dice)},
                 {"precision", num(t.precision)},
                 {"recall", num(t.recall)},
                 {"assd_mm", num(t.assd_mm)},
                 {"hd95_mm", num(t.hd95_mm)},
                 {"truth_voxels", t.truth_voxels},
                 {"pred_voxels", t.pred_voxels}});
  json j = {
      {"id", c.id}, {"structures", s}, {"dice_before", c.dice_before}, {"confusion", c.confusion}};
  return json_text(j);
}

CaseScores case_scores_from_json(const std::string& text) {
  try {
    const json j = json::parse(text);
    auto num = [](const json& v) { return v.is_null() ? NAN : v.get<double>(); };
    CaseScores c;
    c.id = j.at("id").get<std::string>();
    for (const auto& t : j.at("structures")) {
      StructureScore s;
      s.label = t.at("label").get<int>();
      s.dice = num(t.at("dice"));
      s.precision = num(t.at("precision"));
      s.recall = num(t.at("recall"));
      s.assd_mm = num(t.at("assd_mm"));
      s.hd95_mm = num(t.at("hd95_mm"));
      s.truth_voxels = t.at("truth_voxels").get<std::int64_t>();
      s.pred_voxels = t.at("pred_voxels").get<std::int64_t>();
      c.structures.push_back(s);
    }
    c.dice_before = j.at("dice_before").get<double>();
    c.confusion = j.at("confusion").get<std::vector<std::int64_t>>();
    return c;
  } catch (const json::exception& e) {
    throw std::runtime_error(std::string("not a case score record: ") + e.what());
  }
}

namespace {

const std::pair<const char*, double StructureScore::*> kScoreFields[] = {
    {"dice", &StructureScore::dice},
    {"precision", &StructureScore::precision},
    {"recall", &StructureScore::recall},
    {"assd_mm", &StructureScore::assd_mm},
    {"hd95_mm", &StructureScore::hd95_mm}};

std::string cases_csv(const std::vector<CaseScores>& cases) {
  std::ostringstream csv;
  csv << "case,label,structure,dice,precision,recall,assd_mm,hd95_mm,truth_voxels,pred_voxels\n";
  for (const auto& c : cases) {
    for (const auto& s : c.structures) {
      if (s.truth_voxels == 0 && s.pred_voxels == 0) continue;
      csv << c.id << "," << s.label << "," << structure_name(s.label) << "," << fmt(s.dice) << ","
          << fmt(s.precision) << "," << fmt(s.recall) << "," << fmt(s.assd_mm) << ","
          << fmt(s.hd95_mm) << "," << s.truth_voxels << "," << s.pred_voxels << "\n";
    }
  }
  return csv.str();
}

// summary.json's per_structure list; adds the cohort's missed and spurious structure counts.
json per_structure(const std::vector<CaseScores>& cases, int* missed, int* spurious) {
  json per = json::array();
  for (int l = 1; l <= kMaxLabel; ++l) {
    json e = {{"label", l}, {"structure", structure_name(l)}};
    int present = 0, m = 0, sp = 0;
    for (const auto& [name, field] : kScoreFields) {
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
    *missed += m;
    *spurious += sp;
    per.push_back(e);
  }
  return per;
}

json summary(const std::vector<CaseScores>& cases, int failed_cases) {
  json j;
  j["cases_scored"] = cases.size();
  j["cases_failed"] = failed_cases;
  j["definitions"] =
      "Dice, precision, recall as the original (spec 7.2): structures absent from both sides "
      "excluded; "
      "per case the mean over present structures, then mean and population std over cases. "
      "ASSD and HD95 in mm need the structure on both sides; missed = in the truth only, spurious "
      "= predicted only.";
  for (const auto& [name, field] : kScoreFields) {
    json g;
    for (const char* which : {"vertebrae", "discs", "all"}) {
      std::vector<double> per_case;
      for (const auto& c : cases) per_case.push_back(case_mean(c.structures, field, which));
      g[which] = stats(per_case);
    }
    j[name] = g;
  }
  int missed = 0, spurious = 0;
  j["per_structure"] = per_structure(cases, &missed, &spurious);
  j["missed_structures"] = missed;
  j["spurious_structures"] = spurious;
  std::vector<double> before, after;
  for (const auto& c : cases) {
    if (c.dice_before >= 0) {
      before.push_back(c.dice_before);
      after.push_back(case_mean(c.structures, &StructureScore::dice, "all"));
    }
  }
  if (!before.empty())
    j["refinement"] = {{"dice_before", stats(before)}, {"dice_after", stats(after)}};
  return j;
}

// The cohort's confusion matrix as CSV, or "" when no case carries one.
std::string confusion_csv(const std::vector<CaseScores>& cases) {
  std::vector<std::int64_t> conf(kNumClasses * kNumClasses, 0);
  bool any = false;
  for (const auto& c : cases) {
    if (c.confusion.size() != conf.size()) continue;
    any = true;
    for (std::size_t i = 0; i < conf.size(); ++i) conf[i] += c.confusion[i];
  }
  if (!any) return "";
  std::ostringstream cm;
  cm << "truth\\predicted";
  for (int p = 0; p < kNumClasses; ++p) cm << "," << structure_name(p);
  cm << "\n";
  for (int g = 0; g < kNumClasses; ++g) {
    cm << structure_name(g);
    for (int p = 0; p < kNumClasses; ++p) cm << "," << conf[g * kNumClasses + p];
    cm << "\n";
  }
  return cm.str();
}

}  // namespace

std::string write_reports(const std::vector<CaseScores>& cases, const std::string& folder,
                          int failed_cases) {
  const std::string text = json_text(summary(cases, failed_cases), 2) + "\n";
  if (const std::string cm = confusion_csv(cases); !cm.empty())
    write_file_atomic((fs::path(folder) / "confusion.csv").string(), cm);
  write_file_atomic((fs::path(folder) / "cases.csv").string(), cases_csv(cases));
  write_file_atomic((fs::path(folder) / "summary.json").string(), text);
  return text;
}

std::vector<std::string> recorded_case_ids(const std::string& run_json_path) {
  const auto run = nlohmann::json::parse(read_file(run_json_path));
  std::vector<std::string> ids;
  for (const auto& c : run.at("cases")) {
    const std::string status = c.at("status");
    if (status == "ok" || status == "skipped") ids.push_back(c.at("id"));
  }
  std::sort(ids.begin(), ids.end(), natural_less);
  return ids;
}

}  // namespace spineparse::metrics
