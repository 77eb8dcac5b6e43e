#include "io/synth.hpp"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>

#include "io/orientation.hpp"
#include "io/volume_io.hpp"
#include "spine/labels.hpp"
#include "spineparse/files.hpp"

namespace spineparse::io {
namespace fs = std::filesystem;

namespace {

constexpr double kPi = 3.14159265358979323846;

// SplitMix64: a tiny generator whose output is the same on every platform and compiler
// (std::*_distribution is not), so a seed names the same cohort everywhere.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
  double uniform(double a, double b) { return a + (b - a) * uniform(); }
  int integer(int a, int b) { return a + static_cast<int>(uniform() * (b - a + 1)); }  // [a, b]
  double normal() {
    double u1 = std::max(uniform(), 1e-300), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * kPi * u2);
  }

 private:
  std::uint64_t s_;
};

struct Structure {
  int label;
  bool disc;
  double s_mid, height, depth, width;   // mm: along the spine, antero-posterior, left-right
  double ap_mid, tangent_s, tangent_y;  // centre AP position and unit tangent (s, y)
  double tilt_extra;                    // the sacrum's own tilt (not seated)
  double lumbosacral_wedge;             // the sacrum: the L5/S disc's wedge angle (rad, seated)
  double lower_slope;                   // the L5/S disc: its lower surface's slope (u per mm v)
  bool degenerate;
  double fracture;  // anterior height loss (0: intact)
  // A disc above a wedge fracture: its lower surface follows the body's lowered superior endplate
  // (the body's anterior height loss in mm and its depth), as a disc fills a fracture's depression.
  double follow_drop, follow_depth;
};

// The structure's extent along its axis at AP position v (mm, + posterior), as [lo, hi] in the
// synth's u (+ inferior): symmetric, the sacrum's wedge, the L5/S disc's wedge (its lower surface
// on the sacral plate), a fracture's lowered superior endplate, or the disc above it.
std::pair<double, double> extent_u(const Structure& c, double v) {
  double hh = c.height / 2;
  const double dd = c.depth / 2, t = std::clamp(v / dd, -1.0, 1.0);
  if (c.label == 1) hh *= 1.0 - 0.35 * t * 0.5;
  if (c.lower_slope != 0) return {-hh, hh + c.lower_slope * t * dd};
  if (c.fracture > 0) return {-hh + c.height * c.fracture * (1 - t) / 2, hh};
  if (c.follow_drop > 0)
    return {-hh, hh + c.follow_drop * (1 - std::clamp(2 * v / c.follow_depth, -1.0, 1.0)) / 2};
  return {-hh, hh};
}

// How far from a structure's centre drawing and the truth look for it: its farthest corner (its
// extent is linear in v); not seated, half its diagonal, as the demo models' training data was
// drawn (which cuts a little off the turned sacrum's corner).
double radius(const Structure& c, bool seated) {
  if (!seated && c.follow_drop == 0) return 0.5 * std::hypot(c.height, c.depth);
  double r = 0;
  for (double v : {-c.depth / 2, c.depth / 2}) {
    const auto [lo, hi] = extent_u(c, v);
    r = std::max(r, std::hypot(std::max(-lo, hi), c.depth / 2));
  }
  return r;
}

// The truth of each structure (TrueLevel) from its shape, in patient (y, z): the synth's grid
// has y = AP position and z = -s, so the superior axis is a = (-t_y, t_s) and the posterior
// b = (t_s, t_y). `ap_max`, `s_max`: the field of view.
std::vector<TrueLevel> true_levels(const std::vector<Structure>& chain, double ap_max,
                                   double s_max, bool seated) {
  const double nan = std::nan("");
  std::vector<TrueLevel> out(19);
  for (const auto& c : chain) {
    TrueLevel& t = out[c.label - 1];
    t.label = c.label;
    const double r = radius(c, seated) + 1;
    t.complete =
        c.s_mid - r > 0 && c.s_mid + r < s_max && c.ap_mid - r > 0 && c.ap_mid + r < ap_max;
    const double dd = c.depth / 2;
    auto h = [&](double v) { return extent_u(c, v).second - extent_u(c, v).first; };
    t.anterior_height_mm = c.label == 1 ? nan : h(-dd);
    t.middle_height_mm = c.label == 1 ? nan : h(0);
    t.posterior_height_mm = c.label == 1 ? nan : h(dd);
    t.ap_depth_mm = c.label == 1 ? nan : c.depth;
    t.fracture = c.fracture;
    // Surface slopes in u per mm of v; the superior surface is u = lo(v), the inferior u = hi(v).
    const double lo1 = (extent_u(c, dd / 2).first - extent_u(c, -dd / 2).first) / dd;
    const double hi1 = (extent_u(c, dd / 2).second - extent_u(c, -dd / 2).second) / dd;
    const double ay = -c.tangent_y, az = c.tangent_s, by = c.tangent_s, bz = c.tangent_y;
    auto normal_deg = [&](double k) {  // the normal a + k b
      return std::atan2(ay + k * by, az + k * bz) * 180.0 / kPi;
    };
    t.superior_deg = normal_deg(lo1);
    t.inferior_deg = c.label == 1 ? nan : normal_deg(hi1);  // the sacrum's tip is no endplate
    if (c.label == 11 && !seated)  // the turned sacrum is drawn over part of L5/S: its lower
      t.anterior_height_mm = t.middle_height_mm = t.posterior_height_mm = t.inferior_deg = nan;
  }
  // A sacrum turned on its own meets the L5/S disc with a gap or a corner, not with its plate (no
  // real sacrum does): its top is then not the surface a sacral plate is (the one the disc lies
  // on, docs/measurements.md), so no truth.
  if (!seated) out[0].superior_deg = nan;
  return out;
}

// The sampling grid: in-plane size and spacing, slices, and the sagittal geometry. With
// o.slice_spacing the same slab is sampled more or less densely; slice d's centre then lies
// lr_shift + d * sz mm from the drawn grid's first slice centre.
struct PhantomGrid {
  std::int64_t H = 0, W = 0, D = 0;
  double sp = 0, fov = 0, sz = 0, sz_drawn = 0, D_drawn = 0, lr_shift = 0;
  Geometry g;
};

PhantomGrid draw_grid(Rng& rng, const SynthOptions& o) {
  PhantomGrid p;
  const int n = rng.integer(o.min_size, o.max_size);
  p.H = p.W = n;
  p.D = rng.integer(o.min_slices, o.max_slices);
  // Field of view; the in-plane spacing follows, kept within real scans' range where possible.
  double fov = rng.uniform(300.0, 420.0);
  p.sp = std::clamp(fov / n, 0.3, 0.75);
  if (n < 300) p.sp = fov / n;  // tiny test volumes keep a whole spine in view
  p.fov = p.sp * n;
  p.sz = rng.uniform(3.6, 4.6);
  p.sz_drawn = p.sz;
  p.D_drawn = static_cast<double>(p.D);
  if (o.slice_spacing > 0) {
    p.D = std::max<std::int64_t>(1, std::llround(p.D_drawn * p.sz / o.slice_spacing));
    p.sz = o.slice_spacing;
    p.lr_shift = 0.5 * (p.sz - p.sz_drawn);
  }
  Geometry& g = p.g;
  g.spacing = {p.sp, p.sp, p.sz};
  g.origin = {rng.uniform(-30, 30), rng.uniform(-200, -150), rng.uniform(-40, 0)};
  // Axis 0 (H) runs anterior->posterior, axis 1 (W) superior->inferior, axis 2 (D) right->left:
  // a sagittal acquisition, so the direction matrix is not the identity (LPS, columns = axes).
  g.direction = {0, 0, 1, 1, 0, 0, 0, -1, 0};
  for (int r = 0; r < 3; ++r) g.origin[r] += g.direction[r * 3 + 2] * p.lr_shift;
  return p;
}

// The spine's centre line: AP position (mm) as a function of s (mm from the top edge, along W),
// and its left-right course (a slight scoliosis).
struct SpineCurve {
  double ap0, amp, period, phase, lr0, lr_slope;
  double centre(double s) const { return ap0 + amp * std::sin(2 * kPi * s / period + phase); }
  double slope(double s) const {
    return amp * 2 * kPi / period * std::cos(2 * kPi * s / period + phase);
  }
};

SpineCurve draw_curve(Rng& rng, const PhantomGrid& p) {
  SpineCurve c;
  c.ap0 = p.fov * rng.uniform(0.42, 0.55);
  c.amp = p.fov * rng.uniform(0.02, 0.07);
  c.period = p.fov * rng.uniform(1.4, 2.4);
  c.phase = rng.uniform(0, 2 * kPi);
  c.lr0 = (p.D_drawn - 1) * p.sz_drawn * 0.5 + rng.uniform(-0.5, 0.5) * p.sz_drawn;
  c.lr_slope = rng.uniform(-0.03, 0.03);
  return c;
}

// The chain from the sacrum upward: S, L5/S, L5, L4/L5, ..., T10, T9/T10, T9, sized by `scale`.
std::vector<Structure> draw_chain(Rng& rng, double fov, double scale) {
  double s = fov - rng.uniform(0.02, 0.12) * fov;  // bottom of the sacrum
  std::vector<Structure> chain;
  for (int k = 1; k <= 10; ++k) {
    const bool lumbar = k <= 6;
    Structure v{};
    v.label = k;
    v.disc = false;
    v.height = scale * (k == 1   ? rng.uniform(42, 52)
                        : lumbar ? rng.uniform(25, 30)
                                 : rng.uniform(20, 24));
    v.depth = scale * (k == 1   ? rng.uniform(38, 46)
                       : lumbar ? rng.uniform(32, 38)
                                : rng.uniform(27, 32));
    v.width = scale * (lumbar ? rng.uniform(40, 50) : rng.uniform(32, 40));
    v.s_mid = s - v.height / 2;
    const double u = k == 1 ? rng.uniform() : 0.0;  // one draw for either kind of sacrum
    v.tilt_extra = k == 1 ? 0.35 + (0.6 - 0.35) * u : 0.0;  // as rng.uniform(0.35, 0.6)
    v.lumbosacral_wedge = k == 1 ? 0.07 + 0.17 * u : 0.0;  // 4-14 degrees
    s -= v.height;
    chain.push_back(v);
    if (k == 10) break;
    Structure d{};
    d.label = 10 + k;
    d.disc = true;
    d.height = scale * (lumbar ? rng.uniform(8, 12) : rng.uniform(5, 7.5));
    d.depth = v.depth * rng.uniform(0.95, 1.05);
    d.width = v.width * rng.uniform(0.95, 1.05);
    d.s_mid = s - d.height / 2;
    d.degenerate = rng.uniform() < 0.15;
    s -= d.height;
    chain.push_back(d);
  }
  return chain;
}

// The L5/S disc as a wedge, taller in front, and the sacrum turned and placed so that its plate
// lies on the disc's lower surface, centred under it (as in a real spine: no gap, no corner).
void seat_sacrum(Structure& sacrum, Structure& disc) {
  const double dd = disc.depth / 2, hh = disc.height / 2;
  // The wedge, its posterior height kept above half its middle height.
  disc.lower_slope = -std::min(std::tan(sacrum.lumbosacral_wedge), (hh - 1) / dd);
  // A line u = alpha + k v of a frame turned by theta runs at theta + atan2(1, k) in (s, y).
  const double ds = sacrum.depth / 2;
  const double ks = (extent_u(sacrum, ds / 2).first - extent_u(sacrum, -ds / 2).first) / ds;
  const double theta = std::atan2(disc.tangent_y, disc.tangent_s) +
                       std::atan2(1.0, disc.lower_slope) - std::atan2(1.0, ks);
  sacrum.tangent_s = std::cos(theta);
  sacrum.tangent_y = std::sin(theta);
  // The plate's middle (u = -hh_s at v = 0) on the disc's lower surface's middle (u = hh, v = 0).
  const double hs = -extent_u(sacrum, 0).first;
  sacrum.s_mid = disc.s_mid + hh * disc.tangent_s + hs * sacrum.tangent_s;
  sacrum.ap_mid = disc.ap_mid + hh * disc.tangent_y + hs * sacrum.tangent_y;
}

// Wedge fractures (their own generator: the rest of the phantom stays as it was), then each
// structure placed on the curve.
void place_chain(std::vector<Structure>& chain, const SpineCurve& curve, const SynthOptions& o,
                 int case_number) {
  if (o.fracture_rate > 0) {
    Rng fr(o.seed * 0x2545F4914F6CDD1DULL + static_cast<std::uint64_t>(case_number) * 31 + 5);
    for (std::size_t i = 0; i < chain.size(); ++i) {
      Structure& c = chain[i];
      if (c.disc || c.label < 2 || fr.uniform() >= o.fracture_rate) continue;
      c.fracture = fr.uniform(0.2, 0.45);
      if (i + 1 < chain.size() && chain[i + 1].disc)  // the disc above it, if in the chain
        chain[i + 1].follow_drop = c.height * c.fracture, chain[i + 1].follow_depth = c.depth;
    }
  }
  for (auto& c : chain) {
    c.ap_mid = curve.centre(c.s_mid);
    const double t = curve.slope(c.s_mid) +
                     (c.label == 1 && !o.seated_sacrum ? std::tan(c.tilt_extra) : 0.0);
    const double norm = std::sqrt(1 + t * t);
    c.tangent_s = 1 / norm;
    c.tangent_y = t / norm;
  }
  if (o.seated_sacrum) seat_sacrum(chain[0], chain[1]);
}

// T2-like intensities with a per-case gain, noise level and smooth bias field.
struct Contrast {
  double gain, noise, tissue, fat, body, rim, nucleus, annulus, csf, cord;
  double bias[6];
  // The multiplicative bias field at relative position (bx, by, bz) in [0, 1].
  double field(double bx, double by, double bz) const {
    return 1 + 0.12 * bias[0] * std::cos(kPi * bx) + 0.12 * bias[1] * std::cos(kPi * by) +
           0.06 * bias[2] * std::cos(2 * kPi * bx + bias[3]) + 0.08 * bias[4] * (bz - 0.5) +
           0.05 * bias[5] * std::cos(kPi * (bx + by));
  }
};

Contrast draw_contrast(Rng& rng) {
  Contrast c;
  c.gain = rng.uniform(0.75, 1.25);
  c.noise = rng.uniform(12, 30);
  c.tissue = 260 * c.gain, c.fat = 620 * c.gain, c.body = rng.uniform(300, 380) * c.gain,
  c.rim = 120 * c.gain, c.nucleus = rng.uniform(850, 1100) * c.gain, c.annulus = 480 * c.gain,
  c.csf = rng.uniform(1100, 1300) * c.gain, c.cord = 560 * c.gain;
  for (double& b : c.bias) b = rng.uniform(-1, 1);
  return c;
}

// What lies at one point before noise: its label and intensity. (y, ss, dz): mm antero-posterior,
// along the spine from the top edge, and left-right from the spine's midline.
struct Scene {
  const PhantomGrid& grid;
  const SpineCurve& curve;
  const std::vector<Structure>& chain;
  const Contrast& k;
  double scale;
  std::vector<std::pair<double, double>> reach;  // per structure, its span along s (rejection)

  std::pair<int, double> at(double y, double ss, double dz) const {
    const double cy = curve.centre(ss), fov = grid.fov;
    // Background: body tissue in an elliptic torso with a fat layer, air outside.
    const double torso =
        std::pow((y - cy + 0.05 * fov) / (0.46 * fov), 2) + std::pow(dz / 160.0, 2);
    double val = torso < 1 ? (torso > 0.8 ? k.fat : k.tissue) : 8 * k.gain;
    // Spinal canal behind the bodies: CSF with the cord inside.
    const double behind = y - cy;
    if (behind > 20 * scale && behind < 36 * scale && std::abs(dz) < 11)
      val = std::abs(behind - 28 * scale) < 4.5 * scale && std::abs(dz) < 6 ? k.cord : k.csf;
    for (std::size_t i = 0; i < chain.size(); ++i) {
      if (ss < reach[i].first || ss > reach[i].second) continue;
      const auto& c = chain[i];
      const double ds = ss - c.s_mid, dy = y - c.ap_mid;
      const double u = ds * c.tangent_s + dy * c.tangent_y;   // along the spine
      const double v = -ds * c.tangent_y + dy * c.tangent_s;  // antero-posterior
      const double dd = c.depth / 2;
      const auto [lo, hi] = extent_u(c, v);
      const double a = std::abs(u - 0.5 * (lo + hi)) / (0.5 * (hi - lo));
      const double r2 = (v / dd) * (v / dd) + (dz / (c.width / 2)) * (dz / (c.width / 2));
      const double f = c.disc ? a * a * a * a + r2 * r2 : std::pow(a, 8) + r2 * r2 * r2;
      if (f > 1) continue;
      if (c.disc) {
        const double core = a * a + r2;
        val =
            (c.degenerate ? 0.45 : 1.0) * (core < 0.45 ? k.nucleus : 0.5 * (k.nucleus + k.annulus));
        if (core > 0.8) val = k.annulus;
      } else {
        val = f > 0.75 ? k.rim : k.body * (1 + 0.06 * std::sin(0.9 * u + 1.3 * v));
      }
      return {c.label, val};
    }
    return {0, val};
  }
};

// Slice d of the image (Rician noise from `nr`) and of the mask.
void render_slice(const Scene& sc, std::int64_t d, Rng& nr, std::int16_t* I, std::uint8_t* M) {
  const PhantomGrid& p = sc.grid;
  const double lr = p.lr_shift + d * p.sz;
  const double bz = p.D > 1 ? static_cast<double>(d) / (p.D - 1) : 0.5;
  for (std::int64_t h = 0; h < p.H; ++h) {
    const double y = h * p.sp;
    for (std::int64_t w = 0; w < p.W; ++w) {
      const double ss = w * p.sp;
      const auto [label, val] = sc.at(y, ss, lr - (sc.curve.lr0 + sc.curve.lr_slope * ss));
      const double re = val * sc.k.field(y / p.fov, ss / p.fov, bz) + sc.k.noise * nr.normal(),
                   im = sc.k.noise * nr.normal();
      const double m = std::sqrt(re * re + im * im);
      const std::int64_t idx = (d * p.H + h) * p.W + w;
      I[idx] = static_cast<std::int16_t>(std::clamp(std::lround(m), 0L, 32767L));
      M[idx] = static_cast<std::uint8_t>(label);
    }
  }
}

}  // namespace

Phantom make_phantom(const SynthOptions& o, int case_number) {
  Rng rng(o.seed * 0x100000001B3ULL + static_cast<std::uint64_t>(case_number) * 0x9E3779B1ULL + 17);
  Phantom ph;
  ph.id = "Case" + std::to_string(case_number);
  const PhantomGrid grid = draw_grid(rng, o);
  ph.geometry = grid.g;
  const SpineCurve curve = draw_curve(rng, grid);
  const double scale = rng.uniform(0.8, 1.12) * std::min(1.0, grid.fov / 330.0);
  std::vector<Structure> chain = draw_chain(rng, grid.fov, scale);
  place_chain(chain, curve, o, case_number);
  ph.truth = true_levels(chain, static_cast<double>(grid.H - 1) * grid.sp,
                         static_cast<double>(grid.W - 1) * grid.sp, o.seated_sacrum);
  const Contrast contrast = draw_contrast(rng);
  Scene scene{grid, curve, chain, contrast, scale, {}};
  for (const auto& c : chain) {
    const double r = radius(c, o.seated_sacrum) + 2;
    scene.reach.emplace_back(c.s_mid - r, c.s_mid + r);
  }
  auto img = NdArray::make<std::int16_t>({grid.D, grid.H, grid.W});
  auto mask = NdArray::make<std::uint8_t>({grid.D, grid.H, grid.W});
  std::vector<Rng> slice_rngs;
  for (std::int64_t d = 0; d < grid.D; ++d) slice_rngs.emplace_back(rng.next());
  tbb::parallel_for(std::int64_t{0}, grid.D, [&](std::int64_t d) {
    render_slice(scene, d, slice_rngs[d], img->data<std::int16_t>(), mask->data<std::uint8_t>());
  });
  bool present[20] = {false};
  const std::uint8_t* M = mask->data<std::uint8_t>();
  for (std::int64_t i = 0; i < mask->numel(); ++i) present[M[i]] = true;
  for (int k = 10; k >= 1 && !ph.highest_label_visible; --k)
    if (present[k]) ph.highest_label_visible = k;
  ph.image = img;
  ph.mask = mask;
  return ph;
}

namespace {
// The phantom stored in other axis codes.
void stored_as(const std::string& codes, Phantom& ph) {
  const Reorientation r = plan_reorientation(axis_codes(ph.geometry), codes);
  const std::array<std::int64_t, 3> ijk{ph.image->dim(1), ph.image->dim(2), ph.image->dim(0)};
  ph.geometry = reorient(ph.geometry, ijk, r);
  ph.image = reorient(*ph.image, r);
  ph.mask = reorient(*ph.mask, r);
}
}  // namespace

std::vector<SynthSummary> write_cohort(const SynthOptions& o, const std::string& out_dir,
                                       const std::function<void(const SynthSummary&)>& progress) {
  if (o.cases < 1) throw std::runtime_error("synth: --cases must be at least 1");
  if (o.min_size < 16 || o.max_size < o.min_size) throw std::runtime_error("synth: bad size range");
  if (o.min_slices < 1 || o.max_slices < o.min_slices)
    throw std::runtime_error("synth: bad slice range");
  if (!(o.slice_spacing >= 0) || o.slice_spacing > 50)
    throw std::runtime_error("synth: slice spacing must be 0 (drawn) or up to 50 mm");
  std::string why;
  if (!o.orientation.empty() && !valid_axis_codes(o.orientation, &why))
    throw std::runtime_error("synth: --orientation " + why);
  fs::create_directories(fs::path(out_dir) / "original_mr");
  if (o.masks) fs::create_directories(fs::path(out_dir) / "mask");
  std::vector<SynthSummary> out(o.cases);
  std::mutex mu;
  tbb::parallel_for(0, o.cases, [&](int i) {
    const int number = o.first_case + i;
    Phantom ph = make_phantom(o, number);
    if (!o.orientation.empty()) stored_as(o.orientation, ph);
    write_volume((fs::path(out_dir) / "original_mr" / (ph.id + ".nii.gz")).string(), *ph.image,
                 ph.geometry);
    if (o.masks) {
      write_volume((fs::path(out_dir) / "mask" / ("mask_case" + std::to_string(number) + ".nii.gz"))
                       .string(),
                   *ph.mask, ph.geometry);
    }
    SynthSummary s;
    s.id = ph.id;
    s.D = ph.image->dim(0);
    s.H = ph.image->dim(1);
    s.W = ph.image->dim(2);
    s.geometry = ph.geometry;
    bool present[20] = {false};
    const auto* m = ph.mask->data<std::uint8_t>();
    for (std::int64_t k = 0; k < ph.mask->numel(); ++k) present[m[k]] = true;
    for (int k = 1; k < 20; ++k) s.labels_present += present[k];
    s.truth = ph.truth;
    std::lock_guard<std::mutex> lk(mu);
    out[i] = s;
    if (progress) progress(s);
  });
  nlohmann::json j;
  j["generator"] = "spineparse synth";
  j["seed"] = o.seed;
  if (o.seated_sacrum) j["seated_sacrum"] = true;
  j["cases"] = nlohmann::json::array();
  for (const auto& s : out) {
    j["cases"].push_back({{"id", s.id},
                          {"size_HWD", {s.H, s.W, s.D}},
                          {"spacing", s.geometry.spacing},
                          {"labels_present", s.labels_present}});
  }
  write_file_atomic((fs::path(out_dir) / "cohort.json").string(), j.dump(2) + "\n");
  std::vector<CaseTruth> truth;
  for (const auto& s : out) truth.emplace_back(s.id, s.truth);
  write_file_atomic((fs::path(out_dir) / "truth_measurements.csv").string(),
                    truth_measurements_csv(truth));
  write_file_atomic((fs::path(out_dir) / "truth_alignment.csv").string(),
                    truth_alignment_csv(truth));
  return out;
}

namespace {
std::string num(double v) {
  if (std::isnan(v)) return "";
  char b[32];
  std::snprintf(b, sizeof b, "%.4f", v);
  return b;
}
}  // namespace

std::string truth_measurements_csv(const std::vector<CaseTruth>& cases) {
  std::string csv =
      "case,label,structure,complete,anterior_height_mm,middle_height_mm,posterior_height_mm,"
      "ap_depth_mm,superior_endplate_deg,inferior_endplate_deg,fracture\n";
  for (const auto& [id, levels] : cases)
    for (const auto& t : levels)
      csv += id + "," + std::to_string(t.label) + "," + structure_name(t.label) + "," +
             (t.complete ? "1" : "0") + "," + num(t.anterior_height_mm) + "," +
             num(t.middle_height_mm) + "," + num(t.posterior_height_mm) + "," + num(t.ap_depth_mm) +
             "," + num(t.superior_deg) + "," + num(t.inferior_deg) + "," + num(t.fracture) + "\n";
  return csv;
}

std::string truth_alignment_csv(const std::vector<CaseTruth>& cases) {
  std::string csv = "case,lordosis_l1_s1_deg,sacral_slope_deg";
  for (int d = 11; d <= 19; ++d) {
    std::string n = structure_name(d);
    std::replace(n.begin(), n.end(), '/', '_');
    csv += ",angle_" + n + "_deg";
  }
  csv += "\n";
  for (const auto& [id, levels] : cases) {
    auto ok = [&](int label) { return levels[label - 1].complete; };
    const double nan = std::nan("");
    const auto& S = levels[0];
    csv += id + "," + num(ok(1) && ok(6) ? levels[5].superior_deg - S.superior_deg : nan) + "," +
           num(ok(1) ? -S.superior_deg : nan);
    auto mid = [&](int label) {  // a body's mid-plane, the sacrum's plate (as metrics::measure)
      const auto& v = levels[label - 1];
      return label == 1 ? v.superior_deg : (v.superior_deg + v.inferior_deg) / 2;
    };
    for (int k = 1; k <= 9; ++k)  // disc 10+k: vertebra k+1's mid-plane against k's
      csv += "," + num(ok(k) && ok(k + 1) ? mid(k + 1) - mid(k) : nan);
    csv += "\n";
  }
  return csv;
}

}  // namespace spineparse::io
