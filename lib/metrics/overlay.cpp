#include "metrics/overlay.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <vector>

#include "io/orientation.hpp"
#include "metrics/measure.hpp"
#include "metrics/rescale.hpp"
#include "spine/labels.hpp"
#include "spineparse/files.hpp"

namespace spineparse::metrics {

std::array<unsigned char, 3> label_colour(int label) {
  static const unsigned char kPalette[kNumClasses][3] = {
      {0, 0, 0},       {230, 25, 75},   {60, 180, 75},   {255, 225, 25},  {0, 130, 200},
      {245, 130, 48},  {145, 30, 180},  {70, 240, 240},  {240, 50, 230},  {210, 245, 60},
      {250, 190, 212}, {0, 128, 128},   {220, 190, 255}, {170, 110, 40},  {255, 250, 200},
      {128, 0, 0},     {170, 255, 195}, {128, 128, 0},   {255, 215, 180}, {0, 0, 128}};
  return {kPalette[label % kNumClasses][0], kPalette[label % kNumClasses][1],
          kPalette[label % kNumClasses][2]};
}

namespace {

// A 5x7 bitmap font for the legend's characters.
const std::map<char, std::array<const char*, 7>>& font() {
  static const std::map<char, std::array<const char*, 7>> f = {
      {'0', {"01110", "10001", "10011", "10101", "11001", "10001", "01110"}},
      {'1', {"00100", "01100", "00100", "00100", "00100", "00100", "01110"}},
      {'2', {"01110", "10001", "00001", "00010", "00100", "01000", "11111"}},
      {'3', {"11110", "00001", "00001", "01110", "00001", "00001", "11110"}},
      {'4', {"00010", "00110", "01010", "10010", "11111", "00010", "00010"}},
      {'5', {"11111", "10000", "11110", "00001", "00001", "10001", "01110"}},
      {'6', {"00110", "01000", "10000", "11110", "10001", "10001", "01110"}},
      {'7', {"11111", "00001", "00010", "00100", "01000", "01000", "01000"}},
      {'8', {"01110", "10001", "10001", "01110", "10001", "10001", "01110"}},
      {'9', {"01110", "10001", "10001", "01111", "00001", "00010", "01100"}},
      {'S', {"01111", "10000", "10000", "01110", "00001", "00001", "11110"}},
      {'L', {"10000", "10000", "10000", "10000", "10000", "10000", "11111"}},
      {'T', {"11111", "00100", "00100", "00100", "00100", "00100", "00100"}},
      {'/', {"00001", "00010", "00010", "00100", "01000", "01000", "10000"}},
      {'G', {"01110", "10001", "10000", "10111", "10001", "10001", "01111"}},
      {'?', {"01110", "10001", "00001", "00110", "00100", "00000", "00100"}},
  };
  return f;
}

struct Canvas {
  int w, h;
  std::vector<unsigned char> rgb;
  Canvas(int w_, int h_) : w(w_), h(h_), rgb(static_cast<std::size_t>(w_) * h_ * 3, 24) {}
  void put(int x, int y, std::array<unsigned char, 3> c) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    std::copy(c.begin(), c.end(), &rgb[(static_cast<std::size_t>(y) * w + x) * 3]);
  }
  void line(double x0, double y0, double x1, double y1, std::array<unsigned char, 3> c) {
    const int n = static_cast<int>(std::ceil(std::max(std::abs(x1 - x0), std::abs(y1 - y0)))) + 1;
    for (int i = 0; i <= n; ++i) {
      const double t = static_cast<double>(i) / n;
      put(static_cast<int>(std::lround(x0 + t * (x1 - x0))),
          static_cast<int>(std::lround(y0 + t * (y1 - y0))), c);
    }
  }
  void text(int x, int y, const std::string& s, std::array<unsigned char, 3> c) {
    for (char ch : s) {
      auto it = font().find(ch);
      if (it != font().end()) {
        for (int r = 0; r < 7; ++r)
          for (int k = 0; k < 5; ++k)
            if (it->second[r][k] == '1') put(x + k, y + r, c);
      }
      x += 6;
    }
  }
};

// How one display axis runs through the stored [D, H, W] array: the array axis, whether the
// array index grows along the display direction, the voxel count and spacing (mm).
struct DisplayAxis {
  int array_axis = 0;
  bool forward = true;
  std::int64_t n = 1;
  double spacing = 1.0;
  std::int64_t index(std::int64_t t) const { return forward ? t : n - 1 - t; }
};

// The display axes of a sagittal view: [0] the patient's left-right axis (looked along, slices
// counted toward the left), [1] rows, superior to inferior, [2] columns, anterior to posterior:
// the stored axes that io.reorient would bring to "LIP" (closest axes for oblique scans).
std::array<DisplayAxis, 3> sagittal_axes(const Geometry& g, const NdArray& image) {
  // File axes H, W, D (geometry columns 0, 1, 2) are array axes 1, 2, 0.
  static const int kArrayAxis[3] = {1, 2, 0};
  const io::Reorientation r = io::plan_reorientation(io::axis_codes(g), "LIP");
  std::array<DisplayAxis, 3> out;
  for (int k = 0; k < 3; ++k) {
    const int f = r.source[static_cast<std::size_t>(k)];
    DisplayAxis& a = out[static_cast<std::size_t>(k)];
    a.array_axis = kArrayAxis[f];
    a.forward = !r.flip[static_cast<std::size_t>(k)];
    a.n = image.dim(a.array_axis);
    a.spacing = g.spacing[static_cast<std::size_t>(f)];
  }
  return out;
}

// Array offset of the voxel at display position (slice s, row r, column c), all canonical.
std::int64_t offset_of(const NdArray& a, const std::array<DisplayAxis, 3>& ax, std::int64_t s,
                       std::int64_t r, std::int64_t c) {
  std::int64_t idx[3] = {0, 0, 0};
  idx[ax[0].array_axis] = ax[0].index(s);
  idx[ax[1].array_axis] = ax[1].index(r);
  idx[ax[2].array_axis] = ax[2].index(c);
  return (idx[0] * a.dim(1) + idx[1]) * a.dim(2) + idx[2];
}

// Labelled voxels per index of one array axis, counted in memory order.
std::vector<std::int64_t> labelled_per_index(const NdArray& labels, int axis) {
  std::vector<std::int64_t> count(static_cast<std::size_t>(labels.dim(axis)), 0);
  const std::uint8_t* L = labels.data<std::uint8_t>();
  const std::int64_t n0 = labels.dim(0), n1 = labels.dim(1), n2 = labels.dim(2);
  for (std::int64_t i = 0; i < n0; ++i)
    for (std::int64_t j = 0; j < n1; ++j) {
      const std::uint8_t* row = L + (i * n1 + j) * n2;
      if (axis == 2) {
        for (std::int64_t k = 0; k < n2; ++k) count[k] += row[k] != 0;
        continue;
      }
      std::int64_t n = 0;
      for (std::int64_t k = 0; k < n2; ++k) n += row[k] != 0;
      count[axis == 0 ? i : j] += n;
    }
  return count;
}

// A rectangle of a sagittal slice: rows [r0, r1), columns [c0, c1) (canonical indices).
struct Window {
  std::int64_t r0, r1, c0, c1;
};

// Draws window `win` of sagittal slice s (canonical index) into a pw x ph panel at x0: superior
// up, anterior left, nearest neighbour (labels stay crisp), grey from the slice's 1st-99th
// percentiles, labels blended with weight `alpha`.
void draw_panel(Canvas& cv, int x0, const NdArray& image, const NdArray& labels,
                const std::array<DisplayAxis, 3>& ax, std::int64_t s, const Window& win, int pw,
                int ph, double alpha = 0.55) {
  const float* I = image.data<float>();
  const std::uint8_t* Lb = labels.data<std::uint8_t>();
  std::vector<float> v;
  v.reserve(static_cast<std::size_t>(ax[1].n * ax[2].n));
  for (std::int64_t r = 0; r < ax[1].n; ++r)
    for (std::int64_t c = 0; c < ax[2].n; ++c) v.push_back(I[offset_of(image, ax, s, r, c)]);
  const float hi = kth_smallest(v, v.size() * 99 / 100), lo = kth_smallest(v, v.size() / 100);
  const std::int64_t nr = win.r1 - win.r0, nc = win.c1 - win.c0;
  for (int oy = 0; oy < ph; ++oy)
    for (int ox = 0; ox < pw; ++ox) {
      const std::int64_t r = win.r0 + std::min(nr - 1, (2 * oy + 1) * nr / (2 * ph)),
                         c = win.c0 + std::min(nc - 1, (2 * ox + 1) * nc / (2 * pw));
      const std::int64_t o = offset_of(image, ax, s, r, c);
      const float g = hi > lo ? std::clamp((I[o] - lo) / (hi - lo), 0.0f, 1.0f) : 0.0f;
      const unsigned char grey = static_cast<unsigned char>(g * 255);
      std::array<unsigned char, 3> col = {grey, grey, grey};
      if (const int l = Lb[o]) {
        const auto lc = label_colour(l);
        for (int k = 0; k < 3; ++k)
          col[k] = static_cast<unsigned char>((1 - alpha) * col[k] + alpha * lc[k]);
      }
      cv.put(x0 + ox, oy, col);
    }
}

}  // namespace

namespace {

void put_u32(std::string& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xff));
}

void put_chunk(std::string& out, const char* type, const std::string& data) {
  put_u32(out, static_cast<std::uint32_t>(data.size()));
  const std::string body = std::string(type, 4) + data;
  out += body;
  put_u32(out, static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()),
                                                static_cast<uInt>(body.size()))));
}

}  // namespace

std::string encode_png_rgb(int w, int h, const std::vector<unsigned char>& rgb) {
  std::string raw;  // each row: filter type 0, then the row's RGB bytes
  raw.reserve(static_cast<std::size_t>(h) * (3 * w + 1));
  for (int y = 0; y < h; ++y) {
    raw.push_back('\0');
    raw.append(reinterpret_cast<const char*>(rgb.data()) + static_cast<std::size_t>(y) * 3 * w,
               static_cast<std::size_t>(3 * w));
  }
  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::string packed(packed_size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size,
                reinterpret_cast<const Bytef*>(raw.data()), static_cast<uLong>(raw.size()),
                Z_BEST_SPEED) != Z_OK)
    throw std::runtime_error("PNG: compression failed");
  packed.resize(packed_size);
  std::string out("\x89PNG\r\n\x1a\n", 8);
  std::string ihdr;
  put_u32(ihdr, static_cast<std::uint32_t>(w));
  put_u32(ihdr, static_cast<std::uint32_t>(h));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8 bits, RGB, deflate, no filter, no interlace
  put_chunk(out, "IHDR", ihdr);
  put_chunk(out, "IDAT", packed);
  put_chunk(out, "IEND", "");
  return out;
}

std::string render_overlay_png(const NdArray& image, const NdArray& labels,
                               const Geometry& geometry, int max_size) {
  if (labels.shape() != image.shape())
    throw std::runtime_error("overlay: labels and image differ in size");
  const auto ax = sagittal_axes(geometry, image);
  // The sagittal slice with the most labelled voxels (the first of equals, counted left-ward).
  const auto per_index = labelled_per_index(labels, ax[0].array_axis);
  std::vector<std::int64_t> count(static_cast<std::size_t>(ax[0].n), 0);
  for (std::int64_t s = 0; s < ax[0].n; ++s) count[s] = per_index[ax[0].index(s)];
  const std::int64_t best = std::max_element(count.begin(), count.end()) - count.begin();
  // Every pixel the same physical size: the longer side of the plane is max_size pixels.
  const double rows_mm = ax[1].n * ax[1].spacing, cols_mm = ax[2].n * ax[2].spacing;
  const double scale = max_size / std::max(rows_mm, cols_mm);
  const int pw = std::max(1, static_cast<int>(std::lround(cols_mm * scale))),
            ph = std::max(1, static_cast<int>(std::lround(rows_mm * scale)));
  const int legend_w = 70, gap = 6;
  Canvas cv(2 * pw + gap + legend_w, std::max(ph, kMaxLabel * 14 + 4));
  const Window all{0, ax[1].n, 0, ax[2].n};
  draw_panel(cv, 0, image, labels, ax, ax[0].n / 2, all, pw, ph);
  draw_panel(cv, pw + gap, image, labels, ax, best, all, pw, ph);
  const int lx = 2 * pw + gap + 6;
  for (int i = 0; i < kMaxLabel; ++i) {
    // Cranial to caudal, as the original prints: T9 ... S, then T9/T10 ... L5/S.
    const int label = i < 10 ? 10 - i : 29 - i;
    const int y = 4 + i * 14;
    for (int a = 0; a < 10; ++a)
      for (int b = 0; b < 10; ++b) cv.put(lx + a, y + b, label_colour(label));
    cv.text(lx + 14, y + 1, structure_name(label), {230, 230, 230});
  }
  return encode_png_rgb(cv.w, cv.h, cv.rgb);
}

namespace {

// Continuous canonical (slice, row, column) position of a patient point (LPS, mm).
struct ToDisplay {
  std::array<DisplayAxis, 3> ax;
  io::PatientToIndex to_index;
  ToDisplay(const Geometry& g, const std::array<DisplayAxis, 3>& axes) : ax(axes), to_index(g) {}
  std::array<double, 3> at(const std::array<double, 3>& p) const {
    const auto idx = to_index(p);  // file axes H, W, D
    std::array<double, 3> out{};
    for (int k = 0; k < 3; ++k) {
      const double t = idx[static_cast<std::size_t>((ax[k].array_axis + 2) % 3)];  // array 1, 2, 0
      out[k] = ax[k].forward ? t : static_cast<double>(ax[k].n - 1) - t;
    }
    return out;
  }
};

// The spine's mid-sagittal slice: the median slice of the measured structures' centroids.
std::int64_t spine_slice(const CaseMeasurement& m, const ToDisplay& to) {
  std::vector<double> s;
  for (const auto& l : m.levels)
    if (l.voxels) s.push_back(to.at(l.centroid)[0]);
  if (s.empty()) return to.ax[0].n / 2;
  std::nth_element(s.begin(), s.begin() + s.size() / 2, s.end());
  return std::clamp<std::int64_t>(std::llround(s[s.size() / 2]), 0, to.ax[0].n - 1);
}

// The labelled part of slice s with `margin_mm` around it (the whole slice when unlabelled).
Window labelled_window(const NdArray& labels, const std::array<DisplayAxis, 3>& ax, std::int64_t s,
                       double margin_mm) {
  Window w{ax[1].n, -1, ax[2].n, -1};
  const auto* L = labels.data<std::uint8_t>();
  for (std::int64_t r = 0; r < ax[1].n; ++r)
    for (std::int64_t c = 0; c < ax[2].n; ++c)
      if (L[offset_of(labels, ax, s, r, c)]) {
        w.r0 = std::min(w.r0, r), w.r1 = std::max(w.r1, r + 1);
        w.c0 = std::min(w.c0, c), w.c1 = std::max(w.c1, c + 1);
      }
  if (w.r1 < 0) return {0, ax[1].n, 0, ax[2].n};
  const auto mr = static_cast<std::int64_t>(margin_mm / ax[1].spacing),
             mc = static_cast<std::int64_t>(margin_mm / ax[2].spacing);
  return {std::max<std::int64_t>(0, w.r0 - mr), std::min(ax[1].n, w.r1 + mr),
          std::max<std::int64_t>(0, w.c0 - mc), std::min(ax[2].n, w.c1 + mc)};
}

}  // namespace

std::vector<MeasurementLine> measurement_lines(const CaseMeasurement& m) {
  auto mid = [](const std::array<double, 3>& a, const std::array<double, 3>& b) {
    return std::array<double, 3>{(a[0] + b[0]) / 2, (a[1] + b[1]) / 2, (a[2] + b[2]) / 2};
  };
  std::vector<MeasurementLine> out;
  for (const bool vertebrae : {false, true})
    for (const auto& l : m.levels) {
      if (is_vertebra(l.label) != vertebrae) continue;
      for (const Endplate* e : {&l.superior, &l.inferior})
        if (e->valid) out.push_back({e->anterior, e->posterior, l.label, false});
      if (std::isnan(l.middle_height_mm) || !l.superior.valid || !l.inferior.valid) continue;
      out.push_back({l.superior.anterior, l.inferior.anterior, l.label, true});
      out.push_back({mid(l.superior.anterior, l.superior.posterior),
                     mid(l.inferior.anterior, l.inferior.posterior), l.label, true});
      out.push_back({l.superior.posterior, l.inferior.posterior, l.label, true});
    }
  return out;
}

RgbImage render_measurement_rgb(const NdArray& image, const NdArray& labels,
                                const Geometry& geometry, const CaseMeasurement& m, int max_size) {
  if (labels.shape() != image.shape())
    throw std::runtime_error("measurement picture: labels and image differ in size");
  const auto ax = sagittal_axes(geometry, image);
  const ToDisplay to(geometry, ax);
  const std::int64_t s = spine_slice(m, to);
  const Window win = labelled_window(labels, ax, s, 10.0);
  const double rows_mm = static_cast<double>(win.r1 - win.r0) * ax[1].spacing,
               cols_mm = static_cast<double>(win.c1 - win.c0) * ax[2].spacing;
  const double scale = max_size / std::max(rows_mm, cols_mm);
  const int pw = std::max(1, static_cast<int>(std::lround(cols_mm * scale))),
            ph = std::max(1, static_cast<int>(std::lround(rows_mm * scale)));
  const int left = 48;  // room for the level names
  Canvas cv(left + pw, ph);
  draw_panel(cv, left, image, labels, ax, s, win, pw, ph, 0.3);
  auto px = [&](const std::array<double, 3>& p) {  // patient point -> canvas (x, y)
    const auto d = to.at(p);
    return std::array<double, 2>{
        left +
            (d[2] - static_cast<double>(win.c0) + 0.5) * pw / static_cast<double>(win.c1 - win.c0) -
            0.5,
        (d[1] - static_cast<double>(win.r0) + 0.5) * ph / static_cast<double>(win.r1 - win.r0) -
            0.5};
  };
  const std::array<unsigned char, 3> kBody = {255, 225, 0}, kDisc = {0, 220, 255},
                                     kHeight = {255, 255, 255}, kFlag = {255, 60, 60},
                                     kUnsure = {140, 140, 140};
  for (const MeasurementLine& l : measurement_lines(m)) {
    const auto a = px(l.a), b = px(l.b);
    cv.line(a[0], a[1], b[0], b[1], l.height ? kHeight : is_vertebra(l.label) ? kBody : kDisc);
  }
  for (const auto& l : m.levels) {  // vertebrae named beside their anterior border
    if (!is_vertebra(l.label) || std::isnan(l.middle_height_mm) || !l.superior.valid ||
        !l.inferior.valid)
      continue;
    const auto at = px({(l.superior.anterior[0] + l.inferior.anterior[0]) / 2,
                        (l.superior.anterior[1] + l.inferior.anterior[1]) / 2,
                        (l.superior.anterior[2] + l.inferior.anterior[2]) / 2});
    // An unreliable structure gets no grade, only a grey question mark.
    std::string name = structure_name(l.label);
    const bool graded = l.reliable && l.height_loss_grade >= 1;
    if (!l.reliable) name += " ?";
    if (graded) name += " G" + std::to_string(l.height_loss_grade);
    const int x = std::max(0, static_cast<int>(at[0]) - 6 * static_cast<int>(name.size()) - 4);
    cv.text(x, static_cast<int>(at[1]) - 3, name, !l.reliable ? kUnsure : graded ? kFlag : kHeight);
  }
  return {cv.w, cv.h, std::move(cv.rgb)};
}

std::string render_measurement_png(const NdArray& image, const NdArray& labels,
                                   const Geometry& geometry, const CaseMeasurement& m,
                                   int max_size) {
  const RgbImage p = render_measurement_rgb(image, labels, geometry, m, max_size);
  return encode_png_rgb(p.w, p.h, p.rgb);
}

void write_overlay_png(const std::string& path, const NdArray& image, const NdArray& labels,
                       const Geometry& geometry, int max_size) {
  const std::string png = render_overlay_png(image, labels, geometry, max_size);
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  write_file_atomic(path, png);
}

}  // namespace spineparse::metrics
