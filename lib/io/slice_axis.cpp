#include "io/slice_axis.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace spineparse::io {

namespace {

template <typename T>
void copy_as_float(const NdArray& a, std::vector<float>& out) {
  const T* p = a.data<T>();
  for (std::int64_t i = 0; i < a.numel(); ++i) out[i] = static_cast<float>(p[i]);
}

std::vector<float> as_float(const NdArray& a) {
  std::vector<float> out(static_cast<std::size_t>(a.numel()));
  switch (a.dtype()) {
    case DType::kUInt8: copy_as_float<std::uint8_t>(a, out); break;
    case DType::kInt16: copy_as_float<std::int16_t>(a, out); break;
    case DType::kInt32: copy_as_float<std::int32_t>(a, out); break;
    case DType::kInt64: copy_as_float<std::int64_t>(a, out); break;
    case DType::kFloat32: copy_as_float<float>(a, out); break;
    case DType::kFloat64: copy_as_float<double>(a, out); break;
  }
  return out;
}

// [outer, D, plane] view sizes of a [.., D, H, W] array.
struct Layout {
  std::int64_t outer = 1, slices = 0, plane = 0;
};

Layout layout_of(const NdArray& a, const SlicePlan& p) {
  const std::size_t n = a.ndim();
  if (n < 3 || a.dim(n - 3) != p.from)
    throw std::runtime_error("slice resampling: array " + a.shape_string() + " does not have " +
                             std::to_string(p.from) + " slices");
  Layout l;
  for (std::size_t i = 0; i + 3 < n; ++i) l.outer *= a.dim(i);
  l.slices = p.from;
  l.plane = a.dim(n - 2) * a.dim(n - 1);
  return l;
}

std::vector<std::int64_t> shape_with(const NdArray& a, std::int64_t slices) {
  auto s = a.shape();
  s[s.size() - 3] = slices;
  return s;
}

// The weights of source slices for new slice k: (source index, weight) pairs summing to 1.
std::vector<std::pair<std::int64_t, double>> weights_for(const SlicePlan& p, std::int64_t k) {
  std::vector<std::pair<std::int64_t, double>> w;
  if (p.to_spacing >= p.from_spacing) {  // fewer slices: overlap of slabs
    const double lo = k * p.to_spacing, hi = lo + p.to_spacing;
    const auto first = static_cast<std::int64_t>(std::floor(lo / p.from_spacing));
    for (std::int64_t s = std::max<std::int64_t>(0, first); s < p.from; ++s) {
      const double a = std::max(lo, s * p.from_spacing), b = std::min(hi, (s + 1) * p.from_spacing);
      if (b <= a) {
        if (s * p.from_spacing >= hi) break;
        continue;
      }
      w.emplace_back(s, (b - a) / p.to_spacing);
    }
  } else {  // more slices: linear between centres
    const double x = std::clamp((k + 0.5) * p.to_spacing / p.from_spacing - 0.5, 0.0,
                                static_cast<double>(p.from - 1));
    const auto s0 = static_cast<std::int64_t>(std::floor(x));
    const std::int64_t s1 = std::min(s0 + 1, p.from - 1);
    w.emplace_back(s0, 1 - (x - s0));
    if (s1 != s0) w.emplace_back(s1, x - s0);
  }
  double sum = 0;
  for (const auto& [s, v] : w) sum += v;
  for (auto& [s, v] : w) v /= sum;
  return w;
}

}  // namespace

SlicePlan plan_slices(std::int64_t slices, double spacing, double target) {
  if (slices < 1 || !(spacing > 0) || !(target > 0))
    throw std::runtime_error("slice resampling: needs slices >= 1 and positive spacings");
  SlicePlan p;
  p.from = slices;
  p.from_spacing = spacing;
  p.to = std::max<std::int64_t>(1, std::llround(static_cast<double>(slices) * spacing / target));
  p.to_spacing = static_cast<double>(slices) * spacing / static_cast<double>(p.to);
  return p;
}

SlicePlan inverse(const SlicePlan& p) { return {p.to, p.from, p.to_spacing, p.from_spacing}; }

NdArrayPtr resample_slices(const NdArray& a, const SlicePlan& p) {
  const Layout l = layout_of(a, p);
  const std::vector<float> src = as_float(a);
  auto out = NdArray::make<float>(shape_with(a, p.to));
  float* o = out->data<float>();
  for (std::int64_t k = 0; k < p.to; ++k) {
    const auto w = weights_for(p, k);
    for (std::int64_t c = 0; c < l.outer; ++c) {
      float* dst = o + (c * p.to + k) * l.plane;
      std::fill(dst, dst + l.plane, 0.0f);
      for (const auto& [s, v] : w) {
        const float* from = src.data() + (c * l.slices + s) * l.plane;
        const auto f = static_cast<float>(v);
        for (std::int64_t i = 0; i < l.plane; ++i) dst[i] += f * from[i];
      }
    }
  }
  return out;
}

NdArrayPtr resample_label_slices(const NdArray& a, const SlicePlan& p) {
  const Layout l = layout_of(a, p);
  auto out = std::make_shared<NdArray>(a.dtype(), shape_with(a, p.to));
  const std::size_t bytes = static_cast<std::size_t>(l.plane) * dtype_size(a.dtype());
  const auto* src = static_cast<const unsigned char*>(a.raw());
  auto* dst = static_cast<unsigned char*>(out->raw());
  for (std::int64_t k = 0; k < p.to; ++k) {
    const auto s = std::min<std::int64_t>(
        p.from - 1, static_cast<std::int64_t>(std::floor((k + 0.5) * p.to_spacing / p.from_spacing)));
    for (std::int64_t c = 0; c < l.outer; ++c)
      std::memcpy(dst + static_cast<std::size_t>(c * p.to + k) * bytes,
                  src + static_cast<std::size_t>(c * l.slices + s) * bytes, bytes);
  }
  return out;
}

Geometry resample_geometry(const Geometry& g, const SlicePlan& p) {
  Geometry out = g;
  const double shift = 0.5 * (p.to_spacing - p.from_spacing);  // mm along axis k
  for (int r = 0; r < 3; ++r) out.origin[r] += g.direction[r * 3 + 2] * shift;
  out.spacing[2] = p.to_spacing;
  return out;
}

}  // namespace spineparse::io
