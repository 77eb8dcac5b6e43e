#include "metrics/measure.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

#include "spine/labels.hpp"

namespace spineparse::metrics {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kDeg = 57.29577951308232;

struct V2 {
  double y = 0, z = 0;  // patient posterior, superior (LPS y, z)
};
V2 operator+(V2 a, V2 b) { return {a.y + b.y, a.z + b.z}; }
V2 operator-(V2 a, V2 b) { return {a.y - b.y, a.z - b.z}; }
V2 operator*(double s, V2 a) { return {s * a.y, s * a.z}; }
double dot(V2 a, V2 b) { return a.y * b.y + a.z * b.z; }
V2 unit(V2 a) {
  const double n = std::hypot(a.y, a.z);
  return n > 0 ? V2{a.y / n, a.z / n} : V2{0, 1};
}
// The posterior-pointing perpendicular of a superior-pointing axis, in the sagittal plane.
V2 posterior_of(V2 a) { return {a.z, -a.y}; }

// Voxel centres of one label in patient coordinates, with what the frame fitting needs.
struct Points {
  std::vector<std::array<double, 3>> p;
  std::array<double, 3> centroid{};
  std::array<std::int64_t, 3> lo{}, hi{};   // index box (h, w, d)
  std::vector<std::array<double, 3>> edge;  // those on the volume's boundary (not left-right)
};

// Index (h, w, d) = ITK (i, j, k) -> patient: origin + direction * diag(spacing) * index.
struct Grid {
  const Geometry& g;
  std::array<double, 3> at(double h, double w, double d) const {
    const double idx[3] = {h, w, d};
    std::array<double, 3> p{};
    for (int r = 0; r < 3; ++r) {
      p[r] = g.origin[r];
      for (int a = 0; a < 3; ++a) p[r] += g.direction[r * 3 + a] * g.spacing[a] * idx[a];
    }
    return p;
  }
  // A voxel's extent along a patient direction.
  double extent(const std::array<double, 3>& dir) const {
    double e = 0;
    for (int a = 0; a < 3; ++a) {
      double c = 0;
      for (int r = 0; r < 3; ++r) c += dir[r] * g.direction[r * 3 + a];
      e += std::abs(c) * g.spacing[a];
    }
    return e;
  }
  double extent(V2 v) const { return extent({0, v.y, v.z}); }
};

// Every structure's voxel centres; `count`: label_counts of `labels`.
std::vector<Points> collect(const NdArray& labels, const Grid& grid,
                            const std::array<std::int64_t, kNumClasses>& count) {
  const std::int64_t D = labels.dim(0), H = labels.dim(1), W = labels.dim(2);
  // The boundaries that cut structures: those of the axes that are not mostly left-right (a
  // sagittal stack's first and last slices cut every structure's sides, which are not measured).
  const std::int64_t size[3] = {H, W, D};
  bool cuts[3];
  for (int a = 0; a < 3; ++a) cuts[a] = std::abs(grid.g.direction[a]) <= 0.7 && size[a] > 1;
  const auto* l = labels.data<std::uint8_t>();
  std::vector<Points> pts(kNumClasses);
  for (int c = 0; c < kNumClasses; ++c) {
    pts[c].lo = {H, W, D};
    pts[c].hi = {-1, -1, -1};
    if (c > 0) pts[c].p.reserve(static_cast<std::size_t>(count[c]));
  }
  std::int64_t first_w[kNumClasses], last_w[kNumClasses];  // per row, of the labels in it
  std::int64_t n = 0;
  for (std::int64_t d = 0; d < D; ++d)
    for (std::int64_t h = 0; h < H; ++h, n += W) {
      if (!any_structure(l + n, W)) continue;
      // Voxel centres along the row: the row's first plus w column steps.
      const auto first = grid.at(static_cast<double>(h), 0.0, static_cast<double>(d));
      const auto next = grid.at(static_cast<double>(h), 1.0, static_cast<double>(d));
      const double step[3] = {next[0] - first[0], next[1] - first[1], next[2] - first[2]};
      const bool row_on_edge =
          (cuts[0] && (h == 0 || h == H - 1)) || (cuts[2] && (d == 0 || d == D - 1));
      std::uint32_t seen = 0;
      for (std::int64_t w = 0; w < W; ++w) {
        const int c = l[n + w];
        if (c <= 0 || c >= kNumClasses) continue;
        auto& P = pts[c];
        const double fw = static_cast<double>(w);
        P.p.push_back({first[0] + step[0] * fw, first[1] + step[1] * fw, first[2] + step[2] * fw});
        if (!(seen & (1u << c))) first_w[c] = w;
        seen |= 1u << c;
        last_w[c] = w;
        if (row_on_edge || (cuts[1] && (w == 0 || w == W - 1))) P.edge.push_back(P.p.back());
      }
      for (int c = 1; c < kNumClasses; ++c) {  // the index box (h, w, d), once per row
        if (!(seen & (1u << c))) continue;
        auto& P = pts[c];
        P.lo = {std::min(P.lo[0], h), std::min(P.lo[1], first_w[c]), std::min(P.lo[2], d)};
        P.hi = {std::max(P.hi[0], h), std::max(P.hi[1], last_w[c]), std::max(P.hi[2], d)};
      }
    }
  for (auto& P : pts) {
    if (P.p.empty()) continue;
    std::array<double, 3> s{0, 0, 0};
    for (const auto& q : P.p)
      for (int r = 0; r < 3; ++r) s[r] += q[r];
    for (int r = 0; r < 3; ++r) P.centroid[r] = s[r] / static_cast<double>(P.p.size());
  }
  return pts;
}

// A line u = alpha + beta * v fitted to (v, u) by least squares, refitted once without the points
// more than 3 robust standard deviations (and half a voxel) off the first fit.
struct Line {
  bool ok = false;
  double alpha = 0, beta = 0;
  double at(double v) const { return alpha + beta * v; }
};
Line fit_line(const std::vector<std::pair<double, double>>& vu, double min_dev) {
  auto ls = [](const std::vector<std::pair<double, double>>& xs) {
    Line l;
    const double n = static_cast<double>(xs.size());
    if (xs.size() < 4) return l;
    double sv = 0, su = 0, svv = 0, svu = 0;
    for (const auto& [v, u] : xs) sv += v, su += u, svv += v * v, svu += v * u;
    const double den = n * svv - sv * sv;
    if (std::abs(den) < 1e-12) return l;
    l.beta = (n * svu - sv * su) / den;
    l.alpha = (su - l.beta * sv) / n;
    l.ok = true;
    return l;
  };
  Line l = ls(vu);
  if (!l.ok) return l;
  std::vector<double> r;
  for (const auto& [v, u] : vu) r.push_back(std::abs(u - l.at(v)));
  std::vector<double> sorted = r;
  std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
  const double limit = std::max(3 * 1.4826 * sorted[sorted.size() / 2], min_dev);
  std::vector<std::pair<double, double>> kept;
  for (std::size_t i = 0; i < vu.size(); ++i)
    if (r[i] <= limit) kept.push_back(vu[i]);
  Line l2 = ls(kept);
  return l2.ok ? l2 : l;
}

// A structure's frame in its mid-sagittal plane and the two surfaces found along its axis.
struct Frame {
  bool ok = false;
  std::string why;
  V2 c, a, b;                    // centroid (y, z); axis (superior); posterior
  double x = 0;                  // the plane's left-right position
  Line sup, inf;                 // u = alpha + beta v, u along a and v along b from c
  double v_ant = 0, v_post = 0;  // the body's anterior and posterior borders
  double ea = 0, eb = 0;         // voxel extents along a and b
  double height(double v) const { return sup.at(v) - inf.at(v) + ea; }
  V2 normal(const Line& l) const { return unit(a - l.beta * b); }
};

// The parasagittal planes within `half` mm of the centroid (at least the nearest one): their
// points relative to the centroid, each with its plane's number. The endplates are fitted to
// the column ends of every plane at once: a segmentation's ragged border in one slice weighs less.
// Bodies and discs: 5 mm. The sacrum, whose top falls away beside the midline (the alae): 1 mm.
constexpr double kSlabHalfMm = 5.0, kSacrumSlabHalfMm = 1.0;
struct Slab {
  std::vector<V2> pts;
  std::vector<int> plane;  // per point, 0 .. planes - 1
  int planes = 0;
};

Slab slab(const Points& P, const Grid& grid, double half) {
  const double ex = grid.extent({1, 0, 0});
  const int reach = static_cast<int>(std::floor(std::max(half / ex, 0.5) + 1e-6));
  Slab out;
  out.planes = 2 * reach + 1;
  for (const auto& q : P.p) {
    const double dx = (q[0] - P.centroid[0]) / ex;
    if (std::abs(dx) > reach + 0.5 + 1e-6) continue;  // ties in, whatever the sum order
    const int k = std::clamp(static_cast<int>(std::lround(dx)), -reach, reach);
    out.pts.push_back({q[1] - P.centroid[1], q[2] - P.centroid[2]});
    out.plane.push_back(k + reach);
  }
  return out;
}

// Column tops and bottoms along a, in bins of one voxel along b per plane, fitted over the
// central 60 % of [v_lo, v_hi] (the rounded corners left out).
void fit_surfaces(Frame& f, const Slab& sl, double v_lo, double v_hi) {
  const double bin = f.eb;
  const auto nb = static_cast<std::int64_t>(std::ceil((v_hi - v_lo) / bin)) + 1;
  std::vector<double> top(nb * sl.planes, -1e300), bottom(nb * sl.planes, 1e300);
  for (std::size_t i = 0; i < sl.pts.size(); ++i) {
    const double v = dot(sl.pts[i], f.b), u = dot(sl.pts[i], f.a);
    const auto k =
        static_cast<std::int64_t>(std::floor((v - v_lo) / bin + 0.5));  // centres mid-bin
    if (k < 0 || k >= nb) continue;
    const std::int64_t at = k * sl.planes + sl.plane[i];
    top[at] = std::max(top[at], u);
    bottom[at] = std::min(bottom[at], u);
  }
  std::vector<std::pair<double, double>> t, bt;
  const double lo = v_lo + 0.2 * (v_hi - v_lo), hi = v_hi - 0.2 * (v_hi - v_lo);
  for (std::int64_t at = 0; at < nb * sl.planes; ++at) {
    const double v = v_lo + static_cast<double>(at / sl.planes) * bin;
    if (v < lo || v > hi || top[at] < bottom[at]) continue;
    t.emplace_back(v, top[at]);
    bt.emplace_back(v, bottom[at]);
  }
  f.sup = fit_line(t, 0.5 * f.ea);
  f.inf = fit_line(bt, 0.5 * f.ea);
}

// The body's AP extent in the band around the middle between its surfaces.
bool find_borders(Frame& f, const Slab& sl) {
  double lo = 1e300, hi = -1e300;
  for (const auto& p : sl.pts) {
    const double v = dot(p, f.b), u = dot(p, f.a);
    const double mid = 0.5 * (f.sup.at(v) + f.inf.at(v)), h = f.sup.at(v) - f.inf.at(v);
    if (std::abs(u - mid) > std::max(0.1 * h, f.ea)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (!(hi > lo)) return false;
  f.v_ant = lo - 0.5 * f.eb;
  f.v_post = hi + 0.5 * f.eb;
  return true;
}

// Fits the frame with axis `axis`; `refine`: 0 keep the axis, 1 turn it to the mean normal of
// both surfaces, 2 to the superior surface's normal (the sacrum), a few times.
Frame fit_frame(const Points& P, const Grid& grid, V2 axis, int refine, double half) {
  Frame f;
  f.x = P.centroid[0];
  f.c = {P.centroid[1], P.centroid[2]};
  const Slab pts = slab(P, grid, half);
  if (pts.pts.size() < 20) {
    f.why = "too few voxels in its mid-sagittal plane";
    return f;
  }
  f.a = unit(axis);
  for (int it = 0; it < (refine ? 4 : 1); ++it) {
    f.b = posterior_of(f.a);
    f.ea = grid.extent(f.a);
    f.eb = grid.extent(f.b);
    double lo = 1e300, hi = -1e300;
    for (const auto& p : pts.pts) lo = std::min(lo, dot(p, f.b)), hi = std::max(hi, dot(p, f.b));
    fit_surfaces(f, pts, lo, hi);
    if (!f.sup.ok || !f.inf.ok || !find_borders(f, pts)) {
      f.why = "its endplates could not be fitted (too few columns)";
      return f;
    }
    fit_surfaces(f, pts, f.v_ant + 0.5 * f.eb, f.v_post - 0.5 * f.eb);
    if (!f.sup.ok || !f.inf.ok || !find_borders(f, pts)) {
      f.why = "its endplates could not be fitted (too few columns)";
      return f;
    }
    if (!refine) break;
    const V2 n = refine == 2 ? f.normal(f.sup) : unit(f.normal(f.sup) + f.normal(f.inf));
    const double turn = std::acos(std::clamp(dot(n, f.a), -1.0, 1.0));
    f.a = n;
    if (turn < 1e-3) break;
  }
  f.ok = true;
  return f;
}

Endplate endplate(const Frame& f, const Line& l, bool upper) {
  Endplate e;
  e.valid = true;
  const V2 n = f.normal(l);
  e.normal_deg = std::atan2(n.y, n.z) * kDeg;
  const double half = (upper ? 0.5 : -0.5) * f.ea;
  for (int end = 0; end < 2; ++end) {
    const double v = end == 0 ? f.v_ant : f.v_post;
    const V2 q = f.c + v * f.b + (l.at(v) + half) * f.a;
    (end == 0 ? e.anterior : e.posterior) = {f.x, q.y, q.z};
  }
  return e;
}

void set_heights(LevelMeasurement& m, const Frame& f) {
  m.superior = endplate(f, f.sup, true);
  if (m.label == 1) return;  // the sacrum: its plate only
  m.ap_depth_mm = f.v_post - f.v_ant;
  m.inferior = endplate(f, f.inf, false);
  m.anterior_height_mm = f.height(f.v_ant);
  m.middle_height_mm = f.height(0.5 * (f.v_ant + f.v_post));
  m.posterior_height_mm = f.height(f.v_post);
}

// A structure cut by the volume's edge: its heights and depth are those of the part in view, so
// they are dropped; an endplate stays only when no cut lies on its side of the centroid (a
// sacrum cut below keeps its plate).
void drop_cut_values(LevelMeasurement& m, const Frame& f, const Points& P) {
  m.anterior_height_mm = m.middle_height_mm = m.posterior_height_mm = m.ap_depth_mm = kNaN;
  if (m.note.empty()) m.note = "touches the volume's edge";
  if (!f.ok) return;
  for (const auto& q : P.edge) {
    const double u = dot(V2{q[1], q[2]} - f.c, f.a);
    (u > 0 ? m.superior : m.inferior).valid = false;
  }
}

V2 centroid2(const Points& P) { return {P.centroid[1], P.centroid[2]}; }

// The initial axis of a structure: from the structure below to the one above in the chain.
V2 chain_axis(const std::vector<Points>& pts, int label) {
  int pos = 0;
  while (kSpineChain[pos] != label) ++pos;
  const Points& self = pts[label];
  const Points* below =
      pos > 0 && !pts[kSpineChain[pos - 1]].p.empty() ? &pts[kSpineChain[pos - 1]] : nullptr;
  const Points* above =
      pos + 1 < static_cast<int>(kSpineChain.size()) && !pts[kSpineChain[pos + 1]].p.empty()
          ? &pts[kSpineChain[pos + 1]]
          : nullptr;
  V2 d{0, 1};
  if (below && above)
    d = centroid2(*above) - centroid2(*below);
  else if (above)
    d = centroid2(*above) - centroid2(self);
  else if (below)
    d = centroid2(self) - centroid2(*below);
  if (std::hypot(d.y, d.z) < 1e-6) d = {0, 1};
  return unit(d);
}

void measure_intensities(LevelMeasurement& m, std::vector<float>& v) {
  if (v.empty()) return;
  const MeanMedian mm = mean_and_median(v);
  m.mean_intensity = mm.mean;
  m.median_intensity = mm.median;
}

double mean_of(std::initializer_list<double> xs) {
  double s = 0;
  int n = 0;
  for (double x : xs)
    if (!std::isnan(x)) s += x, ++n;
  return n ? s / n : kNaN;
}

// A body's mid-plane angle: the bisector of its two endplates (Frobin et al., Clin Biomech 1997),
// so a segmental angle rests on four fitted surfaces and a disc boundary the networks place too
// steep tilts both bodies' mid-planes by half, not the angle by twice. The sacrum's is its plate.
// NaN without both plates (a body cut by the field of view).
double midplane_deg(const LevelMeasurement& v, bool sacrum = false) {
  if (sacrum) return v.superior.valid ? v.superior.normal_deg : kNaN;
  if (!v.superior.valid || !v.inferior.valid) return kNaN;
  return (v.superior.normal_deg + v.inferior.normal_deg) / 2;
}

// Ratios within a level and against its neighbours, and the segmental and spinal angles.
void derive_ratios(CaseMeasurement& c) {
  auto lv = [&](int label) -> LevelMeasurement* {
    return label >= 1 && label <= kMaxLabel ? &c.levels[label - 1] : nullptr;
  };
  for (int k = 2; k <= 10; ++k) {  // vertebrae above the sacrum
    auto& m = *lv(k);
    if (std::isnan(m.posterior_height_mm)) continue;
    m.wedge_ratio = m.anterior_height_mm / m.posterior_height_mm;
    m.biconcavity_ratio = m.middle_height_mm / m.posterior_height_mm;
  }
  for (int k = 1; k <= 9; ++k) {  // disc 10+k between vertebra k (below) and k+1 (above)
    auto& d = *lv(10 + k);
    const auto &lower = *lv(k), &upper = *lv(k + 1);
    if (!std::isnan(d.middle_height_mm)) {
      const double disc_sum = d.anterior_height_mm + d.middle_height_mm + d.posterior_height_mm;
      const double body_sum =
          upper.anterior_height_mm + upper.middle_height_mm + upper.posterior_height_mm;
      d.dhi = disc_sum / body_sum;
      d.disc_to_body_ratio =
          d.middle_height_mm / mean_of({upper.middle_height_mm, lower.middle_height_mm});
      d.farfan_index = (d.anterior_height_mm + d.posterior_height_mm) / d.ap_depth_mm;
    }
    if (!std::isnan(d.mean_intensity))
      d.signal_ratio = d.mean_intensity / mean_of({upper.mean_intensity, lower.mean_intensity});
    c.segmental_deg[k - 1] = midplane_deg(upper) - midplane_deg(lower, k == 1);
  }
  const auto &s = *lv(1), &l1 = *lv(6);
  if (s.superior.valid) c.sacral_slope_deg = -s.superior.normal_deg;
  if (s.superior.valid && l1.superior.valid)
    c.lordosis_l1_s1_deg = l1.superior.normal_deg - s.superior.normal_deg;
}

// A body's endplate and the facing surface of the disc beside it are one boundary: where their
// fitted lines differ by more than kPlateOffDiscDeg, one of the two structures has a piece missing
// or added (a corner the networks left out) and both are marked unreliable. On the clean check
// cohorts it marks 0.3 % of the endplates, those off by 6-15 deg (docs/qc.md). A body with an
// endplate no disc faces (T9's top, a disc absent or cut) cannot be checked so and is unreliable.
constexpr double kPlateOffDiscDeg = 8.0;

// Adds `text` to a structure's note, once.
void add_note(LevelMeasurement& m, const std::string& text) {
  if (m.note.find(text) != std::string::npos) return;
  m.note = m.note.empty() || m.note == "absent" ? text : m.note + "; " + text;
}

// Marks a structure unreliable, adding "unreliable: <why>" to its note.
void mark_unreliable(LevelMeasurement& m, const std::string& why) {
  m.reliable = false;
  add_note(m, "unreliable: " + why);
}

// The disc beside vertebra k's inferior or superior endplate (0: none among the 19 structures:
// T9's top), and that disc's surface facing the endplate (nullptr without a disc or a fitted one).
int disc_beside(int k, bool inferior) {
  const int disc = inferior ? 9 + k : 10 + k;
  return disc <= kMaxLabel ? disc : 0;
}
const Endplate* facing_surface(const CaseMeasurement& c, int k, bool inferior) {
  const int disc = disc_beside(k, inferior);
  if (!disc) return nullptr;
  const LevelMeasurement& d = c.levels[disc - 1];
  const Endplate& s = inferior ? d.superior : d.inferior;
  return s.valid ? &s : nullptr;
}

void mark_plates_off_their_discs(CaseMeasurement& c) {
  for (int k = 2; k <= 10; ++k) {
    auto& body = c.levels[k - 1];
    for (const bool inferior : {true, false}) {
      const int disc = disc_beside(k, inferior);
      const Endplate& plate = inferior ? body.inferior : body.superior;
      if (!plate.valid) continue;
      const Endplate* surface = facing_surface(c, k, inferior);
      if (!surface) {  // T9's top, or a disc absent or cut: nothing to check
        char b[96];
        std::snprintf(b, sizeof b, "no disc confirms the %s endplate of %s",
                      inferior ? "inferior" : "superior", structure_name(k));
        mark_unreliable(body, b);
        continue;
      }
      const double off = std::abs(plate.normal_deg - surface->normal_deg);
      if (off <= kPlateOffDiscDeg) continue;
      char b[96];
      std::snprintf(b, sizeof b, "%s %s endplate %.0f deg off the %s disc", structure_name(k),
                    inferior ? "inferior" : "superior", off, structure_name(disc));
      mark_unreliable(body, b);
      mark_unreliable(c.levels[disc - 1], b);
    }
  }
}

// Whether the disc beside body k's endplate on that side confirms it: the disc is measured and
// reliable and its facing surface lies within kPlateOffDiscDeg of the plate. T9's superior
// endplate has no disc among the 19 structures to confirm it.
bool plate_confirmed(const CaseMeasurement& c, int k, bool inferior) {
  const Endplate& plate = inferior ? c.levels[k - 1].inferior : c.levels[k - 1].superior;
  const Endplate* surface = facing_surface(c, k, inferior);
  return plate.valid && surface && c.levels[disc_beside(k, inferior) - 1].reliable &&
         std::abs(plate.normal_deg - surface->normal_deg) <= kPlateOffDiscDeg;
}

// Genant's height-loss grade of each vertebra above the sacrum, from its own ratios and against its
// reliable neighbours, given only where the discs beside it confirm both endplates (a boundary the
// networks placed a few degrees off tilts an endplate into a wedge no fracture made; T9 is never
// graded). The loss is the largest of 1 - wedge, 1 - biconcavity and the crush term: 1 - its mean
// height / the smaller mean height of the vertebrae beside it, a crushed body being lower than
// both. Without the one above it there is no crush term: bodies grow down the spine, the one below
// by an amount that varies (T12 to L1 most; in synthetic phantoms 30 % or more). Mean heights, not
// posterior ones: an L5 is lower behind than in front by nature, and an endplate fitted a few
// degrees off moves Ha and Hp by opposite amounts but not their mean. Unreliable bodies keep their
// grade in the CSV, where nothing shows it.
void grade_height_loss(CaseMeasurement& c) {
  auto mean_height = [&](int label) {
    const LevelMeasurement& m = c.levels[label - 1];
    return (m.anterior_height_mm + m.middle_height_mm + m.posterior_height_mm) / 3;
  };
  auto reliable_mean_height = [&](int label) {
    return c.levels[label - 1].reliable ? mean_height(label) : kNaN;
  };
  for (int k = 2; k <= 10; ++k) {
    auto& m = c.levels[k - 1];
    m.height_loss_grade = -1;
    if (std::isnan(m.posterior_height_mm)) continue;
    if (!plate_confirmed(c, k, false) || !plate_confirmed(c, k, true)) {
      if (m.reliable) add_note(m, "no grade: an endplate no disc confirms");
      continue;
    }
    double loss = std::max(1 - m.wedge_ratio, 1 - m.biconcavity_ratio);
    const double above = k < 10 ? reliable_mean_height(k + 1) : kNaN;
    const double below = k > 2 ? reliable_mean_height(k - 1) : kNaN;
    if (!std::isnan(above))
      loss =
          std::max(loss, 1 - mean_height(k) / (std::isnan(below) ? above : std::min(above, below)));
    m.height_loss_grade = loss < 0.20 ? 0 : loss < 0.25 ? 1 : loss < 0.40 ? 2 : 3;
  }
}

}  // namespace

LevelMeasurement::LevelMeasurement()
    : anterior_height_mm(kNaN),
      middle_height_mm(kNaN),
      posterior_height_mm(kNaN),
      ap_depth_mm(kNaN),
      wedge_ratio(kNaN),
      biconcavity_ratio(kNaN),
      dhi(kNaN),
      disc_to_body_ratio(kNaN),
      farfan_index(kNaN),
      mean_intensity(kNaN),
      median_intensity(kNaN),
      signal_ratio(kNaN),
      confidence(kNaN) {}

CaseMeasurement::CaseMeasurement() : lordosis_l1_s1_deg(kNaN), sacral_slope_deg(kNaN) {
  segmental_deg.fill(kNaN);
}

void apply_confidence(CaseMeasurement& m, const std::array<double, 19>& confidence,
                      const std::array<double, 19>& reliable) {
  for (auto& l : m.levels) {
    if (l.label < 1 || l.label > kMaxLabel) continue;
    l.confidence = confidence[l.label - 1];
    const double r = reliable[l.label - 1];
    if (!(r <= 0.0)) continue;  // 1 or NaN (not judged)
    char b[48];
    std::snprintf(b, sizeof b, "QC confidence %.2f", l.confidence);
    mark_unreliable(l, r < 0 ? "the case failed QC" : b);
  }
  grade_height_loss(m);  // against the bodies that stayed reliable
}

CaseMeasurement measure_case(const std::string& id, const NdArray& labels, const Geometry& g,
                             const NdArray* image, Rescale rescale) {
  if (labels.ndim() != 3 || labels.dtype() != DType::kUInt8)
    throw std::invalid_argument("measure: labels must be uint8 [D,H,W], not " +
                                labels.shape_string());
  if (image && image->shape() != labels.shape())
    throw std::invalid_argument("measure: image " + image->shape_string() + " and labels " +
                                labels.shape_string() + " differ");
  const Grid grid{g};
  const auto count = label_counts(labels.data<std::uint8_t>(), labels.numel());
  const auto pts = collect(labels, grid, count);
  CaseMeasurement c;
  c.id = id;
  c.levels.resize(kMaxLabel);
  const double voxel_ml = g.spacing[0] * g.spacing[1] * g.spacing[2] / 1000.0;
  std::vector<Frame> frames(kNumClasses);
  auto intensities = image ? intensities_by_label(labels, *image, rescale, count)
                           : std::vector<std::vector<float>>(kNumClasses);
  auto measure_level = [&](int label, V2 axis, int refine) {
    auto& m = c.levels[label - 1];
    const Points& P = pts[label];
    frames[label] = fit_frame(P, grid, axis, refine, label == 1 ? kSacrumSlabHalfMm : kSlabHalfMm);
    if (frames[label].ok)
      set_heights(m, frames[label]);
    else
      m.note = frames[label].why;
  };
  for (int label = 1; label <= kMaxLabel; ++label) {
    auto& m = c.levels[label - 1];
    m.label = label;
    m.voxels = static_cast<std::int64_t>(pts[label].p.size());
    m.volume_ml = static_cast<double>(m.voxels) * voxel_ml;
    if (m.voxels == 0) {
      m.note = "absent";
      continue;
    }
    m.centroid = pts[label].centroid;
    m.complete = pts[label].edge.empty();
    measure_intensities(m, intensities[label]);
  }
  // Discs first (their own flat shape gives their axis), then the bodies between them (the mean
  // of the adjacent discs' axes: the local spine axis), then the sacrum (its plate's normal).
  for (int label = 11; label <= kMaxLabel; ++label)
    if (c.levels[label - 1].voxels) measure_level(label, chain_axis(pts, label), 1);
  for (int k = 2; k <= 10; ++k) {
    if (!c.levels[k - 1].voxels) continue;
    const Frame* below = &frames[9 + k];
    const Frame* above = k < 10 ? &frames[10 + k] : nullptr;
    V2 axis{0, 0};
    int n = 0;
    for (const Frame* f : {below, above})
      if (f && f->ok) axis = axis + f->a, ++n;
    if (n)
      measure_level(k, axis, 0);
    else
      measure_level(k, chain_axis(pts, k), 1);
  }
  if (c.levels[0].voxels) measure_level(1, frames[11].ok ? frames[11].a : chain_axis(pts, 1), 2);
  for (auto& m : c.levels)
    if (m.voxels && !m.complete) drop_cut_values(m, frames[m.label], pts[m.label]);
  // The sacral plate is the surface the L5/S disc lies on: where the disc's lower surface was
  // fitted and not cut off, it is the plate (the disc's frame is sure of it; the sacrum's own
  // top has free, rounded corners and, in a segmentation, ragged borders toward the canal).
  if (c.levels[0].voxels && c.levels[0].superior.valid && c.levels[10].inferior.valid)
    c.levels[0].superior = c.levels[10].inferior;
  derive_ratios(c);
  mark_plates_off_their_discs(c);
  grade_height_loss(c);
  return c;
}

}  // namespace spineparse::metrics
