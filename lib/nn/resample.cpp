#include "nn/resample.hpp"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "spineparse/cpu_clones.hpp"

namespace spineparse::nn {

RowCrop central_rows(std::int64_t H) { return {H / 4, H - H / 4}; }

namespace {

// scipy.ndimage.gaussian_filter1d, mode 'constant' with cval 0, truncate 4.0.
std::vector<double> gaussian_kernel(double sigma) {
  const int r = static_cast<int>(4.0 * sigma + 0.5);
  std::vector<double> k(2 * r + 1);
  double sum = 0;
  for (int i = -r; i <= r; ++i) sum += k[i + r] = std::exp(-0.5 * i * i / (sigma * sigma));
  for (auto& v : k) v /= sum;
  return k;
}

constexpr int kPad = 12;  // scipy pads 'grid-constant' input by 12 before the spline prefilter
const double kPole = std::sqrt(3.0) - 2.0;

// scipy.ndimage.gaussian_filter1d (mode 'constant', cval 0) down every column of a row-major
// [n, cols] array, in scipy's arithmetic for a symmetric kernel (NI_Correlate1D): per element
// the centre tap's product, then (below + above) * weight for the pairs from the outermost in,
// a neighbour outside the array counting as 0; vectorised along the rows.
SPINEPARSE_CPU_CLONES
void gaussian_columns(const double* in, double* out, std::int64_t n, std::int64_t cols,
                      const std::vector<double>& k) {
  const std::int64_t r = static_cast<std::int64_t>(k.size() / 2);
  const std::vector<double> zeros(static_cast<std::size_t>(cols), 0.0);
  auto row = [&](std::int64_t j) { return j >= 0 && j < n ? in + j * cols : zeros.data(); };
  for (std::int64_t i = 0; i < n; ++i) {
    double* o = out + i * cols;
    const double* a = in + i * cols;
    const double k0 = k[r];
    for (std::int64_t x = 0; x < cols; ++x) o[x] = a[x] * k0;
    for (std::int64_t j = r; j >= 1; --j) {
      const double kj = k[r - j];
      const double *lo = row(i - j), *hi = row(i + j);
      for (std::int64_t x = 0; x < cols; ++x) o[x] += (lo[x] + hi[x]) * kj;
    }
  }
}

// scipy.ndimage.zoom (order 3, mode 'grid-constant', grid_mode) down every column of a row-major
// [n, cols] array into [on, cols]: the cubic B-spline coefficients of each column padded by kPad
// zeros (spline_filter1d, mirror initialisation), evaluated at the output samples; each step
// applied to whole rows.
SPINEPARSE_CPU_CLONES
void zoom_columns(const double* in, std::int64_t n, std::int64_t cols, double* out,
                  std::int64_t on, std::vector<double>& c, std::vector<double>& c0) {
  const std::int64_t m = n + 2 * kPad;
  c.assign(m * cols, 0.0);
  c0.assign(cols, 0.0);
  auto row = [&](std::int64_t i) { return &c[i * cols]; };
  const double z = kPole, gain = (1 - z) * (1 - 1 / z);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t x = 0; x < cols; ++x) row(i + kPad)[x] = in[i * cols + x] * gain;
  double zi = z;
  const double zn1 = std::pow(z, static_cast<double>(m - 1));
  for (std::int64_t x = 0; x < cols; ++x) c0[x] = row(0)[x] + zn1 * row(m - 1)[x];
  for (std::int64_t i = 1; i < m - 1; ++i) {
    const double* a = row(i);
    const double* b = row(m - 1 - i);
    for (std::int64_t x = 0; x < cols; ++x) c0[x] += zi * (a[x] + zn1 * b[x]);
    zi *= z;
  }
  for (std::int64_t x = 0; x < cols; ++x) row(0)[x] = c0[x] / (1 - zn1 * zn1);
  for (std::int64_t i = 1; i < m; ++i)
    for (std::int64_t x = 0; x < cols; ++x) row(i)[x] += z * row(i - 1)[x];
  for (std::int64_t x = 0; x < cols; ++x)
    row(m - 1)[x] = (z * row(m - 2)[x] + row(m - 1)[x]) * z / (z * z - 1);
  for (std::int64_t i = m - 2; i >= 0; --i)
    for (std::int64_t x = 0; x < cols; ++x) row(i)[x] = z * (row(i + 1)[x] - row(i)[x]);
  const double scale = static_cast<double>(n) / static_cast<double>(on);
  for (std::int64_t o = 0; o < on; ++o) {
    const double x = (o + 0.5) * scale - 0.5 + kPad;
    const std::int64_t start = static_cast<std::int64_t>(std::floor(x)) - 1;
    const double t = x - std::floor(x);
    const double w[4] = {(1 - t) * (1 - t) * (1 - t) / 6.0, (3 * t * t * t - 6 * t * t + 4) / 6.0,
                         (-3 * t * t * t + 3 * t * t + 3 * t + 1) / 6.0, t * t * t / 6.0};
    double* dst = out + o * cols;
    std::fill(dst, dst + cols, 0.0);
    for (int k = 0; k < 4; ++k) {
      const std::int64_t j = start + k;
      if (j < 0 || j >= m) continue;
      const double* src = row(j);
      for (std::int64_t q = 0; q < cols; ++q) dst[q] += w[k] * src[q];
    }
  }
}

// out [m, n] = in [n, m] transposed, in cache-sized tiles.
void transpose(const double* in, std::int64_t n, std::int64_t m, double* out) {
  constexpr std::int64_t kTile = 32;
  for (std::int64_t i0 = 0; i0 < n; i0 += kTile)
    for (std::int64_t j0 = 0; j0 < m; j0 += kTile)
      for (std::int64_t i = i0; i < std::min(n, i0 + kTile); ++i)
        for (std::int64_t j = j0; j < std::min(m, j0 + kTile); ++j) out[j * n + i] = in[i * m + j];
}

// The smallest and largest voxel - cval over the crop, in 16 lanes of float (x - cval rounds
// monotonically, so the extremes of the differences are the differences of the extremes).
std::pair<double, double> crop_range(const float* in, std::int64_t D, std::int64_t H,
                                     std::int64_t W, RowCrop crop, double cval) {
  constexpr int kLanes = 16;
  float lo[kLanes], hi[kLanes];
  std::fill(lo, lo + kLanes, INFINITY);
  std::fill(hi, hi + kLanes, -INFINITY);
  for (std::int64_t d = 0; d < D; ++d) {
    const float* x = in + (d * H + crop.begin) * W;
    const std::int64_t n = crop.rows() * W;
    std::int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
      for (int k = 0; k < kLanes; ++k) {
        lo[k] = std::min(lo[k], x[i + k]);
        hi[k] = std::max(hi[k], x[i + k]);
      }
    for (int k = 0; i < n; ++i, ++k) lo[k] = std::min(lo[k], x[i]), hi[k] = std::max(hi[k], x[i]);
  }
  return {static_cast<double>(*std::min_element(lo, lo + kLanes)) - cval,
          static_cast<double>(*std::max_element(hi, hi + kLanes)) - cval};
}

// Along H for columns [x0, x0 + cols) of one cropped slice [h, W]: minus cval, the Gaussian
// `gauss` (none where null) and the zoom to oh rows, written to those columns of g [oh, W].
struct ColumnStrip {
  std::vector<double> a, b, c, c0, z;
  void run(const float* slice, std::int64_t h, std::int64_t W, std::int64_t x0, std::int64_t cols,
           double cval, const std::vector<double>* gauss, std::int64_t oh, double* g) {
    a.resize(h * cols);
    for (std::int64_t r = 0; r < h; ++r)
      for (std::int64_t x = 0; x < cols; ++x) a[r * cols + x] = slice[r * W + x0 + x] - cval;
    if (gauss) {
      b.resize(h * cols);
      gaussian_columns(a.data(), b.data(), h, cols, *gauss);
      std::swap(a, b);
    }
    z.resize(oh * cols);
    zoom_columns(a.data(), h, cols, z.data(), oh, c, c0);
    for (std::int64_t r = 0; r < oh; ++r)
      std::copy(&z[r * cols], &z[r * cols] + cols, g + r * W + x0);
  }
};

}  // namespace

// Per slice: H first, in strips of columns that stay in the cache (the Gaussian and the zoom
// along H are per column), so that the W steps run on oh rows instead of all h; then W as the
// columns of the transposed [oh, W] result. The steps are linear and act on separate axes, so
// the order changes only rounding (within float32's, as the tests against scikit-image check).
std::vector<float> resize_slices(const float* in, std::int64_t D, std::int64_t H, std::int64_t W,
                                 RowCrop crop, std::int64_t oh, std::int64_t ow, double cval) {
  const std::int64_t h = crop.rows();
  if (h <= 0 || W <= 0 || oh <= 0 || ow <= 0 || crop.begin < 0 || crop.end > H) {
    throw std::invalid_argument("resize_slices: bad sizes");
  }
  // Clipping uses the range of the whole (cropped) input, as skimage does.
  const auto [lo, hi] = crop_range(in, D, H, W, crop, cval);
  const bool preserve_cval = !(lo <= 0.0 && 0.0 <= hi);
  const double sh = std::max(0.0, (static_cast<double>(h) / oh - 1) / 2);
  const double sw = std::max(0.0, (static_cast<double>(W) / ow - 1) / 2);
  const bool anti_alias = oh < h || ow < W;
  const bool filter_h = anti_alias && sh > 1e-15, filter_w = anti_alias && sw > 1e-15;
  const auto gh = filter_h ? gaussian_kernel(sh) : std::vector<double>{};
  const auto gw = filter_w ? gaussian_kernel(sw) : std::vector<double>{};
  constexpr std::int64_t kStrip = 64;  // columns: a strip's h rows of them stay in L2
  std::vector<float> out(static_cast<std::size_t>(D * oh * ow));
  tbb::parallel_for(std::int64_t{0}, D, [&](std::int64_t d) {
    std::vector<double> g(oh * W), t(W * oh), u(ow * oh), v(oh * ow);
    ColumnStrip strip;
    const float* slice = in + (d * H + crop.begin) * W;
    for (std::int64_t x0 = 0; x0 < W; x0 += kStrip)
      strip.run(slice, h, W, x0, std::min(kStrip, W - x0), cval, filter_h ? &gh : nullptr, oh,
                g.data());
    transpose(g.data(), oh, W, t.data());
    if (filter_w) {
      strip.b.resize(W * oh);
      gaussian_columns(t.data(), strip.b.data(), W, oh, gw);
      std::swap(t, strip.b);
    }
    zoom_columns(t.data(), W, oh, u.data(), ow, strip.c, strip.c0);
    transpose(u.data(), ow, oh, v.data());
    float* o = out.data() + d * oh * ow;
    for (std::int64_t i = 0; i < oh * ow; ++i) {
      double x = v[i];
      if (!(preserve_cval && x == 0.0)) x = std::clamp(x, lo, hi);
      o[i] = static_cast<float>(x + cval);
    }
  });
  return out;
}

CoarseInput make_coarse_input(const NdArray& image, double offset, double scale,
                              std::int64_t height, std::int64_t width, std::int64_t min_slices) {
  const std::int64_t D = image.dim(0), H = image.dim(1), W = image.dim(2);
  if (H < 4)
    throw std::runtime_error("image has " + std::to_string(H) +
                             " rows; at least 4 are needed to crop the central half");
  const double pad_value = (0.0 - offset) / scale;
  auto resized =
      resize_slices(image.data<float>(), D, H, W, central_rows(H), height, width, pad_value);
  const std::int64_t Dp = std::max(D, min_slices);
  const std::int64_t before = (Dp - D + 1) / 2;  // ceil(delta / 2), as the original
  CoarseInput out;
  out.pad_before = before;
  out.input = NdArray::make<float>({1, 1, Dp, height, width});
  float* x = out.input->data<float>();
  std::fill(x, x + out.input->numel(), static_cast<float>(pad_value));
  std::copy(resized.begin(), resized.end(), x + before * height * width);
  return out;
}

std::shared_ptr<NdArray> make_fine_mr(const NdArray& image, double offset, double scale,
                                      std::int64_t height, std::int64_t width) {
  const std::int64_t D = image.dim(0), H = image.dim(1), W = image.dim(2);
  if (H < 4)
    throw std::runtime_error("image has " + std::to_string(H) +
                             " rows; at least 4 are needed to crop the central half");
  auto r = resize_slices(image.data<float>(), D, H, W, central_rows(H), height, width,
                         (0.0 - offset) / scale);
  auto out = NdArray::make<float>({D, height, width});
  std::copy(r.begin(), r.end(), out->data<float>());
  return out;
}

}  // namespace spineparse::nn
