#include "metrics/rescale.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace spineparse::metrics {

namespace {

// Floats as unsigned keys in the same order (negative values reversed); -0 shares +0's key.
std::uint32_t key_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if (u == 0x80000000u) u = 0;
  return u & 0x80000000u ? ~u : u | 0x80000000u;
}

float float_of(std::uint32_t key) {
  const std::uint32_t u = key & 0x80000000u ? key & 0x7fffffffu : ~key;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// The k-th smallest value of v, found by counting the keys' high 16 bits, then the low 16 bits
// of those in the right bin: two streaming passes instead of nth_element's partitions.
float counted_kth(const std::vector<float>& v, std::size_t k) {
  std::vector<std::uint32_t> count(1u << 16, 0);
  for (const float f : v) ++count[key_of(f) >> 16];
  std::uint32_t hi = 0;
  for (; k >= count[hi]; ++hi) k -= count[hi];
  std::fill(count.begin(), count.end(), 0);
  for (const float f : v) {
    const std::uint32_t key = key_of(f);
    count[key & 0xffffu] += key >> 16 == hi;
  }
  std::uint32_t lo = 0;
  for (; k >= count[lo]; ++lo) k -= count[lo];
  return float_of(hi << 16 | lo);
}

}  // namespace

float kth_smallest(std::vector<float>& v, std::size_t k) {
  if (v.size() >= (1u << 16)) return counted_kth(v, k);
  // Shorter lists: the counts would cost more than they save.
  const auto at = v.begin() + static_cast<std::ptrdiff_t>(k);
  std::nth_element(v.begin(), at, v.end());
  return *at == 0.0f ? 0.0f : *at;  // -0 as +0, as the counting does
}

MeanMedian mean_and_median(std::vector<float>& v) {
  double sum = 0;
  for (const float f : v) sum += f;
  return {sum / static_cast<double>(v.size()), kth_smallest(v, (v.size() - 1) / 2)};
}

std::vector<std::vector<float>> intensities_by_label(
    const NdArray& labels, const NdArray& image, Rescale rescale,
    const std::array<std::int64_t, kNumClasses>& count) {
  const auto* l = labels.data<std::uint8_t>();
  const auto* x = image.data<float>();
  std::vector<std::vector<float>> v(kNumClasses);
  for (int c = 1; c < kNumClasses; ++c) v[c].reserve(static_cast<std::size_t>(count[c]));
  for (std::int64_t i = 0; i < labels.numel(); ++i)
    if (l[i] > 0 && l[i] < kNumClasses) v[l[i]].push_back(rescale(x[i]));
  return v;
}

}  // namespace spineparse::metrics
