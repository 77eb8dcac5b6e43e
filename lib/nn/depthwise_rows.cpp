#include "nn/depthwise_rows.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "spineparse/cpu_clones.hpp"

namespace spineparse::nn::depthwise_rows {

namespace {
// 16 channels of one pixel; GCC's vector types, lowered to what each build's CPU has.
using vf = float __attribute__((vector_size(64)));
using vu = uint32_t __attribute__((vector_size(64)));
using vh = uint16_t __attribute__((vector_size(32)));
constexpr int64_t kLanes = 16;

// Inlined into each build of the functions below (so compiled for its CPU); vectors passed by
// reference, as they have no common calling convention across the builds.
#define SPINEPARSE_INLINE inline __attribute__((always_inline))

// bfloat16 -> float is exact; float -> bfloat16 rounds to nearest, ties to even (what LibTorch and
// oneDNN do for finite values).
SPINEPARSE_INLINE float widen(float v) { return v; }
SPINEPARSE_INLINE float widen(uint16_t v) {
  const uint32_t u = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
SPINEPARSE_INLINE void narrow(float v, float* p) { *p = v; }
SPINEPARSE_INLINE void narrow(float v, uint16_t* p) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  *p = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

SPINEPARSE_INLINE void load16(vf& v, const float* p) { std::memcpy(&v, p, sizeof v); }
SPINEPARSE_INLINE void load16(vf& v, const uint16_t* p) {
  vh h;
  std::memcpy(&h, p, sizeof h);
  const vu u = __builtin_convertvector(h, vu) << 16;
  std::memcpy(&v, &u, sizeof v);
}
SPINEPARSE_INLINE void store16(const vf& v, float* p) { std::memcpy(p, &v, sizeof v); }
SPINEPARSE_INLINE void store16(const vf& v, uint16_t* p) {
  vu u;
  std::memcpy(&u, &v, sizeof u);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const vh h = __builtin_convertvector(u, vh);
  std::memcpy(p, &h, sizeof h);
}

// Four output pixels' accumulators and a row's six input pixels (of 16 channels), as named
// vectors: GCC keeps arrays of vectors on the stack, a struct's members in registers.
struct Four {
  vf a0, a1, a2, a3;
};
struct Six {
  vf v0, v1, v2, v3, v4, v5;
};

SPINEPARSE_INLINE void start(Four& a, const float* bias) {
  std::memcpy(&a.a0, bias, sizeof(vf));
  a.a1 = a.a2 = a.a3 = a.a0;
}

// Stores output pixels x0 .. x0 + n - 1 (n <= 4) of channels [j, j + 16).
template <class T>
SPINEPARSE_INLINE void store4(const Four& a, bool relu, T* out, const RowShape& s, int64_t j,
                              int64_t x0, int64_t n) {
  const vf* acc[4] = {&a.a0, &a.a1, &a.a2, &a.a3};
  for (int64_t p = 0; p < n; ++p) {
    vf r = *acc[p];
    if (relu) r = r > 0.f ? r : 0.f;
    store16(r, out + (x0 + p) * s.c + j);
  }
}

// Input pixels x0 - 1 .. x0 + 4 of a row (q points at pixel x0 - 1, channel j), prefetching the
// block after next (the rows are too many streams for the hardware's prefetchers alone).
template <class T>
SPINEPARSE_INLINE void load6(Six& v, const T* q, int64_t c) {
  load16(v.v0, q);
  load16(v.v1, q + c);
  load16(v.v2, q + 2 * c);
  load16(v.v3, q + 3 * c);
  load16(v.v4, q + 4 * c);
  load16(v.v5, q + 5 * c);
  const auto at = reinterpret_cast<std::uintptr_t>(q);  // may lie past the row: only a hint
  for (int64_t i = 9; i < 13; ++i)
    __builtin_prefetch(reinterpret_cast<const void*>(at + i * c * sizeof(T)), 0, 3);
}

// One tap for four output pixels: a.ap += w * inputs p, a multiply then an add.
SPINEPARSE_INLINE void tap(Four& a, const vf& w, const vf& p0, const vf& p1, const vf& p2,
                           const vf& p3) {
  a.a0 += w * p0;
  a.a1 += w * p1;
  a.a2 += w * p2;
  a.a3 += w * p3;
}

// The three taps kw = 0, 1, 2 of one kernel row (weights w, w + c, w + 2 c) at stride 1 and
// dilation 1, in that order.
SPINEPARSE_INLINE void taps3(Four& a, const Six& v, const float* w, int64_t c) {
  vf w0, w1, w2;
  std::memcpy(&w0, w, sizeof w0);
  std::memcpy(&w1, w + c, sizeof w1);
  std::memcpy(&w2, w + 2 * c, sizeof w2);
  tap(a, w0, v.v0, v.v1, v.v2, v.v3);
  tap(a, w1, v.v1, v.v2, v.v3, v.v4);
  tap(a, w2, v.v2, v.v3, v.v4, v.v5);
}

// The channels [j, j + 16) of output pixels [x0, x0 + n), n <= 4, every tap checked against the
// row's ends (the pixels near the ends of a row).
template <class T>
SPINEPARSE_INLINE void block16_edge(const T* const rows[9], const RowShape& s, const float* wt,
                                    const float* bias, bool relu, T* out, int64_t j, int64_t x0,
                                    int64_t n) {
  Four a;
  start(a, bias + j);
  vf* acc[4] = {&a.a0, &a.a1, &a.a2, &a.a3};
  for (int t = 0; t < 9; ++t) {
    if (!rows[t]) continue;
    for (int kw = 0; kw < 3; ++kw) {
      vf w;
      std::memcpy(&w, wt + (t * 3 + kw) * s.c + j, sizeof w);
      for (int64_t p = 0; p < n; ++p) {
        const int64_t xi = (x0 + p) * s.stride + (kw - 1) * s.dilation;
        if (xi < 0 || xi >= s.w) continue;
        vf v;
        load16(v, rows[t] + xi * s.c + j);
        *acc[p] += w * v;
      }
    }
  }
  store4(a, relu, out, s, j, x0, n);
}

// The same for four output pixels whose taps all lie inside the row. kUnit (stride 1, dilation
// 1): a row's six input pixels loaded once for its three taps. The same sums in the same order as
// block16_edge.
template <bool kUnit, class T>
SPINEPARSE_INLINE void block16(const T* const rows[9], const RowShape& s, const float* wt,
                               const float* bias, bool relu, T* out, int64_t j, int64_t x0) {
  Four a;
  start(a, bias + j);
  const int64_t step = s.stride * s.c;  // from one output pixel's input to the next
  for (int t = 0; t < 9; ++t) {
    if (!rows[t]) continue;
    if constexpr (kUnit) {
      Six v;
      load6(v, rows[t] + (x0 - 1) * s.c + j, s.c);
      taps3(a, v, wt + t * 3 * s.c + j, s.c);
    } else {
      const T* q = rows[t] + (x0 * s.stride - s.dilation) * s.c + j;
      for (int kw = 0; kw < 3; ++kw, q += s.dilation * s.c) {
        vf w, v0, v1, v2, v3;
        std::memcpy(&w, wt + (t * 3 + kw) * s.c + j, sizeof w);
        load16(v0, q);
        load16(v1, q + step);
        load16(v2, q + 2 * step);
        load16(v3, q + 3 * step);
        tap(a, w, v0, v1, v2, v3);
      }
    }
  }
  store4(a, relu, out, s, j, x0, 4);
}

// Two output rows at once (stride 1, dilation 1; rows h and h + 1 of a slice): the four input
// rows of each kernel slice read once for both. rows[4 kd + i]: input row h - 1 + i of slice kd.
// The same sums in the same order as block16.
template <class T>
SPINEPARSE_INLINE void block16x2(const T* const rows[12], const RowShape& s, const float* wt,
                                 const float* bias, bool relu, T* out0, T* out1, int64_t j,
                                 int64_t x0) {
  Four a, b;
  start(a, bias + j);
  start(b, bias + j);
  for (int kd = 0; kd < 3; ++kd)
    for (int i = 0; i < 4; ++i) {
      const T* r = rows[4 * kd + i];
      if (!r) continue;
      Six v;
      load6(v, r + (x0 - 1) * s.c + j, s.c);
      if (i < 3) taps3(a, v, wt + (3 * kd + i) * 3 * s.c + j, s.c);
      if (i > 0) taps3(b, v, wt + (3 * kd + i - 1) * 3 * s.c + j, s.c);
    }
  store4(a, relu, out0, s, j, x0, 4);
  store4(b, relu, out1, s, j, x0, 4);
}

// The first channel of each block of 16 channels: 0, 16, ..., and c - 16 last where 16 does not
// divide c (its channels computed twice, the same values). None for fewer than 16 channels.
struct Blocks {
  int64_t c;
  struct It {
    int64_t j, c;
    int64_t operator*() const { return j + kLanes > c ? c - kLanes : j; }
    It& operator++() {
      j += kLanes;
      return *this;
    }
    bool operator!=(const It& o) const { return j < o.j; }
  };
  It begin() const { return {0, c}; }
  It end() const { return {c >= kLanes ? c : 0, c}; }
};

// Channel j of every output pixel, one at a time (rows of fewer than 16 channels).
template <class T>
SPINEPARSE_INLINE void channel(const T* const rows[9], const RowShape& s, const float* wt,
                               const float* bias, bool relu, T* out, int64_t j) {
  for (int64_t x = 0; x < s.out_w; ++x) {
    float acc = bias[j];
    for (int t = 0; t < 9; ++t) {
      if (!rows[t]) continue;
      for (int kw = 0; kw < 3; ++kw) {
        const int64_t xi = x * s.stride + (kw - 1) * s.dilation;
        if (xi >= 0 && xi < s.w) acc += wt[(t * 3 + kw) * s.c + j] * widen(rows[t][xi * s.c + j]);
      }
    }
    if (relu) acc = acc > 0.f ? acc : 0.f;
    narrow(acc, out + x * s.c + j);
  }
}

template <class T>
SPINEPARSE_INLINE void row(const T* const rows[9], const RowShape& s, const float* wt,
                           const float* bias, bool relu, T* out) {
  // Output pixels whose three taps all lie inside the row: [first, last].
  const int64_t first = (s.dilation + s.stride - 1) / s.stride,
                last = (s.w - 1 - s.dilation) / s.stride;
  const bool unit = s.stride == 1 && s.dilation == 1;
  for (int64_t x0 = 0; x0 < s.out_w; x0 += 4) {
    const int64_t n = std::min<int64_t>(4, s.out_w - x0);
    const bool interior = n == 4 && x0 >= first && x0 + 3 <= last;
    for (int64_t j : Blocks{s.c})
      if (interior && unit)
        block16<true>(rows, s, wt, bias, relu, out, j, x0);
      else if (interior)
        block16<false>(rows, s, wt, bias, relu, out, j, x0);
      else
        block16_edge(rows, s, wt, bias, relu, out, j, x0, n);
  }
  if (s.c < kLanes)
    for (int64_t j = 0; j < s.c; ++j) channel(rows, s, wt, bias, relu, out, j);
}

template <class T>
SPINEPARSE_INLINE void rows2(const T* const rows[12], const RowShape& s, const float* wt,
                             const float* bias, bool relu, T* out0, T* out1) {
  const T* rows0[9];
  const T* rows1[9];
  for (int kd = 0; kd < 3; ++kd)
    for (int kh = 0; kh < 3; ++kh) {
      rows0[3 * kd + kh] = rows[4 * kd + kh];
      rows1[3 * kd + kh] = rows[4 * kd + kh + 1];
    }
  for (int64_t x0 = 0; x0 < s.out_w; x0 += 4) {
    const int64_t n = std::min<int64_t>(4, s.out_w - x0);
    const bool interior = n == 4 && x0 >= 1 && x0 + 3 <= s.w - 2;
    for (int64_t j : Blocks{s.c})
      if (interior) {
        block16x2(rows, s, wt, bias, relu, out0, out1, j, x0);
      } else {
        block16_edge(rows0, s, wt, bias, relu, out0, j, x0, n);
        block16_edge(rows1, s, wt, bias, relu, out1, j, x0, n);
      }
  }
  for (int64_t j = 0; j < s.c && s.c < kLanes; ++j) {
    channel(rows0, s, wt, bias, relu, out0, j);
    channel(rows1, s, wt, bias, relu, out1, j);
  }
}
}  // namespace

SPINEPARSE_CPU_CLONES
void row_f32(const float* const rows[9], const RowShape& s, const float* wt, const float* bias,
             bool relu, float* out) {
  row(rows, s, wt, bias, relu, out);
}

SPINEPARSE_CPU_CLONES
void row_bf16(const uint16_t* const rows[9], const RowShape& s, const float* wt, const float* bias,
              bool relu, uint16_t* out) {
  row(rows, s, wt, bias, relu, out);
}

SPINEPARSE_CPU_CLONES
void rows2_f32(const float* const rows[12], const RowShape& s, const float* wt, const float* bias,
               bool relu, float* out0, float* out1) {
  rows2(rows, s, wt, bias, relu, out0, out1);
}

SPINEPARSE_CPU_CLONES
void rows2_bf16(const uint16_t* const rows[12], const RowShape& s, const float* wt,
                const float* bias, bool relu, uint16_t* out0, uint16_t* out1) {
  rows2(rows, s, wt, bias, relu, out0, out1);
}

#undef SPINEPARSE_INLINE

}  // namespace spineparse::nn::depthwise_rows
