#include "nn/int8_rows.hpp"

#include "spineparse/cpu_clones.hpp"

namespace spineparse::nn::int8_rows {

namespace {
// Branch-free so that the loops vectorize: the clamps as selects, then adding and subtracting
// 1.5 x 2^23 leaves no fraction bits (round to nearest even for |v| < 2^22).
inline int8_t saturated(float v) {
  constexpr float kRound = 12582912.f;
  v = v < -127.f ? -127.f : v;
  v = v > 127.f ? 127.f : v;
  return static_cast<int8_t>(static_cast<int>((v + kRound) - kRound));
}
}  // namespace

SPINEPARSE_CPU_CLONES
void quantize_pixels(const float* __restrict x, const float* __restrict inv, int8_t* __restrict d,
                     int64_t pixels, int64_t c) {
  // 16 pixels at a time as one run of 16 c values against the scales repeated 16 times: whole
  // vectors whatever c is (the input's 21 channels left a scalar tail on every pixel).
  constexpr int64_t kGroup = 16, kMaxC = 64;
  int64_t p = 0;
  if (c <= kMaxC) {
    float rep[kGroup * kMaxC];
    for (int64_t i = 0; i < kGroup * c; ++i) rep[i] = inv[i % c];
    for (; p + kGroup <= pixels; p += kGroup, x += kGroup * c, d += kGroup * c)
      for (int64_t i = 0; i < kGroup * c; ++i) d[i] = saturated(x[i] * rep[i]);
  }
  for (; p < pixels; ++p, x += c, d += c)
    for (int64_t k = 0; k < c; ++k) d[k] = saturated(x[k] * inv[k]);
}

SPINEPARSE_CPU_CLONES
void skip_sum_row(const uint8_t* __restrict s, const int8_t* __restrict z, int8_t* __restrict d,
                  int64_t w, int64_t c, int64_t zc, float a, float b) {
  for (int64_t x = 0; x < w; ++x, s += c, d += c) {
    const int8_t* __restrict zp = z + (x / 2) * zc + (x % 2) * c;
    for (int64_t k = 0; k < c; ++k) d[k] = saturated(s[k] * a + zp[k] * b);
  }
}

SPINEPARSE_CPU_CLONES
void max_pool_row(const uint8_t* __restrict r0, const uint8_t* __restrict r1, uint8_t* __restrict d,
                  int64_t w, int64_t c) {
  for (int64_t j = 0; j < w; ++j, r0 += 2 * c, r1 += 2 * c, d += c)
    for (int64_t k = 0; k < c; ++k) {
      const uint8_t a = r0[k] > r0[c + k] ? r0[k] : r0[c + k];
      const uint8_t b = r1[k] > r1[c + k] ? r1[k] : r1[c + k];
      d[k] = a > b ? a : b;
    }
}

}  // namespace spineparse::nn::int8_rows
