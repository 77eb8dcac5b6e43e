#include "nn/softmax_planes.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "spineparse/cpu_clones.hpp"

namespace spineparse::nn {

namespace {

// exp(x) for x <= 0 (a logit less the pixel's largest), Cephes' expf: x = n ln 2 + r with
// |r| <= ln 2 / 2 (ln 2 split in two for an exact product), e^r as a degree-7 polynomial, 2^n
// put in the exponent bits. Below -87.3 (e^x under float32's smallest normal) it gives 2^-126
// times e^r, a value no softmax sum notices. Branch-free, so that the loops vectorize.
inline float exp_nonpositive(float x) {
  x = x < -87.3f ? -87.3f : x;
  constexpr float kRound = 12582912.f;  // 1.5 x 2^23: adding and subtracting it rounds to even
  const float n = (x * 1.44269504088896341f + kRound) - kRound;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

// o[k plane + p] = x[p c + k] for p < n, k < c: the block's logits into their planes. Four
// pixels by four channels at a time as a 4x4 transpose in SSE registers where c allows.
void to_planes(const float* __restrict x, std::int64_t n, std::int64_t c, float* __restrict o,
               std::int64_t plane) {
  std::int64_t p = 0;
#if defined(__SSE2__)
  if (c % 4 == 0)
    for (; p + 4 <= n; p += 4)
      for (std::int64_t k = 0; k < c; k += 4) {
        __m128 r0 = _mm_loadu_ps(x + p * c + k), r1 = _mm_loadu_ps(x + (p + 1) * c + k);
        __m128 r2 = _mm_loadu_ps(x + (p + 2) * c + k), r3 = _mm_loadu_ps(x + (p + 3) * c + k);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(o + k * plane + p, r0);
        _mm_storeu_ps(o + (k + 1) * plane + p, r1);
        _mm_storeu_ps(o + (k + 2) * plane + p, r2);
        _mm_storeu_ps(o + (k + 3) * plane + p, r3);
      }
#endif
  for (; p < n; ++p)
    for (std::int64_t k = 0; k < c; ++k) o[k * plane + p] = x[p * c + k];
}

}  // namespace

SPINEPARSE_CPU_CLONES
void softmax_to_planes(const float* __restrict x, std::int64_t pixels, std::int64_t c,
                       float* __restrict probs, std::int64_t plane) {
  // A block of pixels at a time, worked on in a contiguous buffer of c rows: the planes lie a
  // multiple of 4 KB apart, so that working on them in place made every row share a cache set.
  constexpr std::int64_t kBlock = 64;
  std::vector<float> rows(static_cast<std::size_t>(c * kBlock));
  float* __restrict buf = rows.data();
  float top[kBlock], sum[kBlock];
  for (std::int64_t p0 = 0; p0 < pixels; p0 += kBlock) {
    const std::int64_t n = std::min(kBlock, pixels - p0);
    to_planes(x + p0 * c, n, c, buf, kBlock);
    for (std::int64_t p = 0; p < n; ++p) top[p] = buf[p];
    for (std::int64_t k = 1; k < c; ++k) {  // each pixel's largest logit
      const float* __restrict b = buf + k * kBlock;
      for (std::int64_t p = 0; p < n; ++p) top[p] = b[p] > top[p] ? b[p] : top[p];
    }
    for (std::int64_t p = 0; p < n; ++p) sum[p] = 0.f;
    for (std::int64_t k = 0; k < c; ++k) {
      float* __restrict o = buf + k * kBlock;
      for (std::int64_t p = 0; p < n; ++p) {
        o[p] = exp_nonpositive(o[p] - top[p]);
        sum[p] += o[p];
      }
    }
    for (std::int64_t p = 0; p < n; ++p) sum[p] = 1.f / sum[p];
    for (std::int64_t k = 0; k < c; ++k) {
      const float* __restrict b = buf + k * kBlock;
      float* __restrict o = probs + k * plane + p0;
      for (std::int64_t p = 0; p < n; ++p) o[p] = b[p] * sum[p];
    }
  }
}

}  // namespace spineparse::nn
