#include "nn/depthwise_rows.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "nn/precision.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace spineparse::nn::depthwise_rows {

namespace {
// L channels of one pixel as GCC's vector types, lowered to what each build's CPU has. Each build
// takes the width of its registers (AVX-512 16 floats, AVX2 8, SSE2 4): a block's 13 vectors (4
// sums, 6 inputs, 3 weights) then stay in registers (as 16-float vectors, AVX2 has 26 halves for
// 16 registers). Every lane sums its own channel in the same order: the same bytes at any width.
template <int L>
struct Lanes {
  static constexpr int64_t kN = L;
  typedef float vf __attribute__((vector_size(4 * L)));
  typedef uint32_t vu __attribute__((vector_size(4 * L)));
  typedef uint16_t vh __attribute__((vector_size(2 * L)));
};

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

template <class V>
SPINEPARSE_INLINE void load(typename V::vf& v, const float* p) {
  std::memcpy(&v, p, sizeof v);
}
template <class V>
SPINEPARSE_INLINE void load(typename V::vf& v, const uint16_t* p) {
  typename V::vh h;
  std::memcpy(&h, p, sizeof h);
  const typename V::vu u = __builtin_convertvector(h, typename V::vu) << 16;
  std::memcpy(&v, &u, sizeof v);
}
template <class V>
SPINEPARSE_INLINE void store(const typename V::vf& v, float* p) {
  std::memcpy(p, &v, sizeof v);
}
template <class V>
SPINEPARSE_INLINE void store(const typename V::vf& v, uint16_t* p) {
  typename V::vu u;
  std::memcpy(&u, &v, sizeof u);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const typename V::vh h = __builtin_convertvector(u, typename V::vh);
  std::memcpy(p, &h, sizeof h);
}

// Four output pixels' accumulators and a row's six input pixels (of L channels), as named
// vectors: GCC keeps arrays of vectors on the stack, a struct's members in registers.
template <class V>
struct Four {
  typename V::vf a0, a1, a2, a3;
};
template <class V>
struct Six {
  typename V::vf v0, v1, v2, v3, v4, v5;
};

template <class V>
SPINEPARSE_INLINE void start(Four<V>& a, const float* bias) {
  std::memcpy(&a.a0, bias, sizeof a.a0);
  a.a1 = a.a2 = a.a3 = a.a0;
}

// Stores output pixels x0 .. x0 + n - 1 (n <= 4) of channels [j, j + L).
template <class V, class T>
SPINEPARSE_INLINE void store4(const Four<V>& a, bool relu, T* out, const RowShape& s, int64_t j,
                              int64_t x0, int64_t n) {
  const typename V::vf* acc[4] = {&a.a0, &a.a1, &a.a2, &a.a3};
  for (int64_t p = 0; p < n; ++p) {
    typename V::vf r = *acc[p];
    if (relu) r = r > 0.f ? r : 0.f;
    store<V>(r, out + (x0 + p) * s.c + j);
  }
}

// Input pixels x0 - 1 .. x0 + 4 of a row (q points at pixel x0 - 1, channel j), prefetching the
// block after next (the rows are too many streams for the hardware's prefetchers alone).
template <class V, class T>
SPINEPARSE_INLINE void load6(Six<V>& v, const T* q, int64_t c) {
  load<V>(v.v0, q);
  load<V>(v.v1, q + c);
  load<V>(v.v2, q + 2 * c);
  load<V>(v.v3, q + 3 * c);
  load<V>(v.v4, q + 4 * c);
  load<V>(v.v5, q + 5 * c);
  const auto at = reinterpret_cast<std::uintptr_t>(q);  // may lie past the row: only a hint
  for (int64_t i = 9; i < 13; ++i)
    __builtin_prefetch(reinterpret_cast<const void*>(at + i * c * sizeof(T)), 0, 3);
}

// One tap for four output pixels: a.ap += w * inputs p, a multiply then an add.
template <class V>
SPINEPARSE_INLINE void tap(Four<V>& a, const typename V::vf& w, const typename V::vf& p0,
                           const typename V::vf& p1, const typename V::vf& p2,
                           const typename V::vf& p3) {
  a.a0 += w * p0;
  a.a1 += w * p1;
  a.a2 += w * p2;
  a.a3 += w * p3;
}

// The three taps kw = 0, 1, 2 of one kernel row (weights w, w + c, w + 2 c) at stride 1 and
// dilation 1, in that order.
template <class V>
SPINEPARSE_INLINE void taps3(Four<V>& a, const Six<V>& v, const float* w, int64_t c) {
  typename V::vf w0, w1, w2;
  std::memcpy(&w0, w, sizeof w0);
  std::memcpy(&w1, w + c, sizeof w1);
  std::memcpy(&w2, w + 2 * c, sizeof w2);
  tap(a, w0, v.v0, v.v1, v.v2, v.v3);
  tap(a, w1, v.v1, v.v2, v.v3, v.v4);
  tap(a, w2, v.v2, v.v3, v.v4, v.v5);
}

// The channels [j, j + L) of output pixels [x0, x0 + n), n <= 4, every tap checked against the
// row's ends (the pixels near the ends of a row).
template <class V, class T>
SPINEPARSE_INLINE void block_edge(const T* const rows[9], const RowShape& s, const float* wt,
                                  const float* bias, bool relu, T* out, int64_t j, int64_t x0,
                                  int64_t n) {
  Four<V> a;
  start(a, bias + j);
  typename V::vf* acc[4] = {&a.a0, &a.a1, &a.a2, &a.a3};
  for (int t = 0; t < 9; ++t) {
    if (!rows[t]) continue;
    for (int kw = 0; kw < 3; ++kw) {
      typename V::vf w;
      std::memcpy(&w, wt + (t * 3 + kw) * s.c + j, sizeof w);
      for (int64_t p = 0; p < n; ++p) {
        const int64_t xi = (x0 + p) * s.stride + (kw - 1) * s.dilation;
        if (xi < 0 || xi >= s.w) continue;
        typename V::vf v;
        load<V>(v, rows[t] + xi * s.c + j);
        *acc[p] += w * v;
      }
    }
  }
  store4(a, relu, out, s, j, x0, n);
}

// The same for four output pixels whose taps all lie inside the row. kUnit (stride 1, dilation
// 1): a row's six input pixels loaded once for its three taps. The same sums in the same order as
// block_edge.
template <class V, bool kUnit, class T>
SPINEPARSE_INLINE void block(const T* const rows[9], const RowShape& s, const float* wt,
                             const float* bias, bool relu, T* out, int64_t j, int64_t x0) {
  Four<V> a;
  start(a, bias + j);
  const int64_t step = s.stride * s.c;  // from one output pixel's input to the next
  for (int t = 0; t < 9; ++t) {
    if (!rows[t]) continue;
    if constexpr (kUnit) {
      Six<V> v;
      load6(v, rows[t] + (x0 - 1) * s.c + j, s.c);
      taps3(a, v, wt + t * 3 * s.c + j, s.c);
    } else {
      const T* q = rows[t] + (x0 * s.stride - s.dilation) * s.c + j;
      for (int kw = 0; kw < 3; ++kw, q += s.dilation * s.c) {
        typename V::vf w, v0, v1, v2, v3;
        std::memcpy(&w, wt + (t * 3 + kw) * s.c + j, sizeof w);
        load<V>(v0, q);
        load<V>(v1, q + step);
        load<V>(v2, q + 2 * step);
        load<V>(v3, q + 3 * step);
        tap(a, w, v0, v1, v2, v3);
      }
    }
  }
  store4(a, relu, out, s, j, x0, 4);
}

// Two output rows at once (stride 1, dilation 1; rows h and h + 1 of a slice): the four input
// rows of each kernel slice read once for both. rows[4 kd + i]: input row h - 1 + i of slice kd.
// The same sums in the same order as block.
template <class V, class T>
SPINEPARSE_INLINE void block_x2(const T* const rows[12], const RowShape& s, const float* wt,
                                const float* bias, bool relu, T* out0, T* out1, int64_t j,
                                int64_t x0) {
  Four<V> a, b;
  start(a, bias + j);
  start(b, bias + j);
  for (int kd = 0; kd < 3; ++kd)
    for (int i = 0; i < 4; ++i) {
      const T* r = rows[4 * kd + i];
      if (!r) continue;
      Six<V> v;
      load6(v, r + (x0 - 1) * s.c + j, s.c);
      if (i < 3) taps3(a, v, wt + (3 * kd + i) * 3 * s.c + j, s.c);
      if (i > 0) taps3(b, v, wt + (3 * kd + i - 1) * 3 * s.c + j, s.c);
    }
  store4(a, relu, out0, s, j, x0, 4);
  store4(b, relu, out1, s, j, x0, 4);
}

// The first channel of each block of L channels: 0, L, ..., and c - L last where L does not
// divide c (its channels computed twice, the same values). None for fewer than L channels.
struct Blocks {
  int64_t c, lanes;
  struct It {
    int64_t j, c, lanes;
    int64_t operator*() const { return j + lanes > c ? c - lanes : j; }
    It& operator++() {
      j += lanes;
      return *this;
    }
    bool operator!=(const It& o) const { return j < o.j; }
  };
  It begin() const { return {0, c, lanes}; }
  It end() const { return {c >= lanes ? c : 0, c, lanes}; }
};

// Whether the output pixels [x0, x0 + n) are four whose taps all lie inside the row.
struct Interior {
  int64_t first, last;  // the first and last such pixel
  explicit Interior(const RowShape& s)
      : first((s.dilation + s.stride - 1) / s.stride), last((s.w - 1 - s.dilation) / s.stride) {}
  bool operator()(int64_t x0, int64_t n) const { return n == 4 && x0 >= first && x0 + 3 <= last; }
};

// Channel j of every output pixel, one at a time (rows of fewer than L channels).
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

// bfloat16 rows sum in the order of AVX512_BF16's paired dot products (header): for each kernel
// row kh and column kw, the slices kd = 0, 1, 2 and then + 0; a tap in the padding or past the
// row's ends adds w x 0.
SPINEPARSE_INLINE float input_or_zero(const uint16_t* row, const RowShape& s, int64_t xi,
                                      int64_t j) {
  return row && xi >= 0 && xi < s.w ? widen(row[xi * s.c + j]) : 0.f;
}
template <class V>
SPINEPARSE_INLINE void input_or_zero(typename V::vf& v, const uint16_t* row, const RowShape& s,
                                     int64_t xi, int64_t j) {
  if (row && xi >= 0 && xi < s.w)
    load<V>(v, row + xi * s.c + j);
  else
    v = typename V::vf{};
}

// The channels [j, j + L) of output pixels [x0, x0 + n), n <= 4, in the paired order.
template <class V>
SPINEPARSE_INLINE void block_pairs(const uint16_t* const rows[9], const RowShape& s,
                                   const float* wt, const float* bias, bool relu, uint16_t* out,
                                   int64_t j, int64_t x0, int64_t n) {
  Four<V> a;
  start(a, bias + j);
  typename V::vf* acc[4] = {&a.a0, &a.a1, &a.a2, &a.a3};
  const typename V::vf zero = {};
  for (int kh = 0; kh < 3; ++kh)
    for (int kw = 0; kw < 3; ++kw) {
      typename V::vf w0, w1, w2;
      std::memcpy(&w0, wt + (kh * 3 + kw) * s.c + j, sizeof w0);
      std::memcpy(&w1, wt + ((3 + kh) * 3 + kw) * s.c + j, sizeof w1);
      std::memcpy(&w2, wt + ((6 + kh) * 3 + kw) * s.c + j, sizeof w2);
      for (int64_t p = 0; p < n; ++p) {
        const int64_t xi = (x0 + p) * s.stride + (kw - 1) * s.dilation;
        typename V::vf v0, v1, v2;
        input_or_zero<V>(v0, rows[kh], s, xi, j);
        input_or_zero<V>(v1, rows[3 + kh], s, xi, j);
        input_or_zero<V>(v2, rows[6 + kh], s, xi, j);
        *acc[p] += w0 * v0;
        *acc[p] += w1 * v1;
        *acc[p] += w2 * v2;
        *acc[p] += zero;
      }
    }
  store4(a, relu, out, s, j, x0, n);
}

// Channel j of every output pixel in the paired order, one at a time.
SPINEPARSE_INLINE void channel_pairs(const uint16_t* const rows[9], const RowShape& s,
                                     const float* wt, const float* bias, bool relu, uint16_t* out,
                                     int64_t j) {
  for (int64_t x = 0; x < s.out_w; ++x) {
    float acc = bias[j];
    for (int kh = 0; kh < 3; ++kh)
      for (int kw = 0; kw < 3; ++kw) {
        const int64_t xi = x * s.stride + (kw - 1) * s.dilation;
        for (int kd = 0; kd < 3; ++kd)
          acc +=
              wt[((3 * kd + kh) * 3 + kw) * s.c + j] * input_or_zero(rows[3 * kd + kh], s, xi, j);
        acc += 0.f;
      }
    if (relu) acc = acc > 0.f ? acc : 0.f;
    narrow(acc, out + x * s.c + j);
  }
}

// Output pixels [x0, x0 + n) of the channels in blocks of L (none for fewer than L channels).
template <class V>
SPINEPARSE_INLINE void pixels_pairs(const uint16_t* const rows[9], const RowShape& s,
                                    const float* wt, const float* bias, bool relu, uint16_t* out,
                                    int64_t x0, int64_t n) {
  for (int64_t j : Blocks{s.c, V::kN}) block_pairs<V>(rows, s, wt, bias, relu, out, j, x0, n);
}

template <class V>
SPINEPARSE_INLINE void row_pairs(const uint16_t* const rows[9], const RowShape& s, const float* wt,
                                 const float* bias, bool relu, uint16_t* out) {
  for (int64_t x0 = 0; x0 < s.out_w; x0 += 4)
    pixels_pairs<V>(rows, s, wt, bias, relu, out, x0, std::min<int64_t>(4, s.out_w - x0));
  if (s.c < V::kN)
    for (int64_t j = 0; j < s.c; ++j) channel_pairs(rows, s, wt, bias, relu, out, j);
}

// rows[12] (two output rows, header) as the two rows' nine input rows each.
template <class T>
struct TwoRows {
  const T* first[9];
  const T* second[9];
  explicit TwoRows(const T* const rows[12]) {
    for (int kd = 0; kd < 3; ++kd)
      for (int kh = 0; kh < 3; ++kh) {
        first[3 * kd + kh] = rows[4 * kd + kh];
        second[3 * kd + kh] = rows[4 * kd + kh + 1];
      }
  }
};

template <class V>
SPINEPARSE_INLINE void row(const float* const rows[9], const RowShape& s, const float* wt,
                           const float* bias, bool relu, float* out) {
  const Interior inside(s);
  const bool unit = s.stride == 1 && s.dilation == 1;
  for (int64_t x0 = 0; x0 < s.out_w; x0 += 4) {
    const int64_t n = std::min<int64_t>(4, s.out_w - x0);
    const bool interior = inside(x0, n);
    for (int64_t j : Blocks{s.c, V::kN})
      if (interior && unit)
        block<V, true>(rows, s, wt, bias, relu, out, j, x0);
      else if (interior)
        block<V, false>(rows, s, wt, bias, relu, out, j, x0);
      else
        block_edge<V>(rows, s, wt, bias, relu, out, j, x0, n);
  }
  if (s.c < V::kN)
    for (int64_t j = 0; j < s.c; ++j) channel(rows, s, wt, bias, relu, out, j);
}

template <class V>
SPINEPARSE_INLINE void rows2(const float* const rows[12], const RowShape& s, const float* wt,
                             const float* bias, bool relu, float* out0, float* out1) {
  const TwoRows<float> in(rows);
  for (int64_t x0 = 0; x0 < s.out_w; x0 += 4) {
    const int64_t n = std::min<int64_t>(4, s.out_w - x0);
    const bool interior = n == 4 && x0 >= 1 && x0 + 3 <= s.w - 2;
    for (int64_t j : Blocks{s.c, V::kN})
      if (interior) {
        block_x2<V>(rows, s, wt, bias, relu, out0, out1, j, x0);
      } else {
        block_edge<V>(in.first, s, wt, bias, relu, out0, j, x0, n);
        block_edge<V>(in.second, s, wt, bias, relu, out1, j, x0, n);
      }
  }
  for (int64_t j = 0; j < s.c && s.c < V::kN; ++j) {
    channel(in.first, s, wt, bias, relu, out0, j);
    channel(in.second, s, wt, bias, relu, out1, j);
  }
}

// bfloat16: the paired order (row_pairs), two rows as two single rows.
template <class V>
SPINEPARSE_INLINE void row(const uint16_t* const rows[9], const RowShape& s, const float* wt,
                           const float* bias, bool relu, uint16_t* out) {
  row_pairs<V>(rows, s, wt, bias, relu, out);
}
template <class V>
SPINEPARSE_INLINE void rows2(const uint16_t* const rows[12], const RowShape& s, const float* wt,
                             const float* bias, bool relu, uint16_t* out0, uint16_t* out1) {
  const TwoRows<uint16_t> in(rows);
  row_pairs<V>(in.first, s, wt, bias, relu, out0);
  row_pairs<V>(in.second, s, wt, bias, relu, out1);
}

template <class T>
using RowFn = void (*)(const T* const*, const RowShape&, const Taps&, bool, T*);
template <class T>
using Rows2Fn = void (*)(const T* const*, const RowShape&, const Taps&, bool, T*, T*);

// One build per vector width: row and rows2 on L lanes, compiled for a CPU that has that width.
#define SPINEPARSE_BUILD(name, L, target)                                                        \
  template <class T>                                                                             \
  target void row_##name(const T* const rows[9], const RowShape& s, const Taps& taps, bool relu, \
                         T* out) {                                                               \
    row<Lanes<L>>(rows, s, taps.wt(), taps.bias(), relu, out);                                   \
  }                                                                                              \
  template <class T>                                                                             \
  target void rows2_##name(const T* const rows[12], const RowShape& s, const Taps& taps,         \
                           bool relu, T* out0, T* out1) {                                        \
    rows2<Lanes<L>>(rows, s, taps.wt(), taps.bias(), relu, out0, out1);                          \
  }

template <class T>
struct Build {
  RowFn<T> row;
  Rows2Fn<T> rows2;
};

// The builds, narrowest first; set by use_build (tests); 0: the widest this CPU runs.
enum BuildId : int { kDefault = 0, kSse2, kAvx2, kAvx512, kAvx512Bf16, kAvx512Bf16Fma };
const char* const kBuildNames[] = {"", "sse2", "avx2", "avx512", "avx512_bf16", "avx512_bf16_fma"};
std::atomic<int> g_forced{kDefault};

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
SPINEPARSE_BUILD(avx512, 16, __attribute__((target("arch=x86-64-v4"))))
SPINEPARSE_BUILD(avx2, 8, __attribute__((target("arch=x86-64-v3"))))
SPINEPARSE_BUILD(sse2, 4, )

// The bfloat16 rows on AVX512_BF16: each VDPBF16PS adds two taps' exact products to a float32
// sum, the odd (upper) bfloat16 of each pair first, each sum rounded to nearest (Intel SDM); so the
// slices kd = 0 and 1 of a tap go in as one pair (kd 0 upper) and kd = 2 with a zero below it: the
// order the other builds follow. Inputs and sums below 2^-126 are zero here (the instruction's
// DAZ and FTZ), the one place where this build can differ from the others. Blocks of 32 channels;
// a pair of input vectors interleaved (unpacklo/hi) holds channels {0-3, 8-11, 16-19, 24-27} and
// {4-7, ...} of the block, which packus puts back in order when the sums are stored.
#define SPINEPARSE_BF16_TARGET __attribute__((target("arch=x86-64-v4,avx512bf16")))

// One 32-channel block's weights for the paired sums: per tap (kh, kw) the pair kd 0 | 1 and
// kd 2 | 0, each in the two halves of the interleaved order.
struct PairTaps {
  __m512i v[9][4];  // [3 kh + kw][pair lo, pair hi, lone lo, lone hi]
  __m512 f[9][6];   // [3 kh + kw][kd 0 lo, hi, kd 1 lo, hi, kd 2 lo, hi] as float32
};

// 32 floats that are bfloat16 values, as bfloat16, in order. (GCC's vector types rather than
// its shift and insert intrinsics, which GCC 12 flags as reading undefined values.)
SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE __m512i bf16x32(const float* p) {
  typedef uint32_t u32x16 __attribute__((vector_size(64)));
  typedef uint16_t u16x16 __attribute__((vector_size(32)));
  u16x16 h[2];
  for (int i = 0; i < 2; ++i) {
    u32x16 u;
    std::memcpy(&u, p + 16 * i, sizeof u);
    h[i] = __builtin_convertvector(u >> 16, u16x16);
  }
  __m512i out;
  std::memcpy(&out, h, sizeof out);
  return out;
}

// wt's taps for c >= 32 channels interleaved into out, one PairTaps per block of Blocks{c, 32}.
SPINEPARSE_BF16_TARGET void interleave_taps(const float* wt, int64_t c, PairTaps* out) {
  const __m512i zero = _mm512_setzero_si512();
  std::size_t k = 0;
  for (int64_t j : Blocks{c, 32}) {
    PairTaps& p = out[k++];
    for (int t = 0; t < 9; ++t) {  // t = 3 kh + kw
      const __m512i w0 = bf16x32(wt + t * c + j), w1 = bf16x32(wt + (9 + t) * c + j),
                    w2 = bf16x32(wt + (18 + t) * c + j);
      p.v[t][0] = _mm512_unpacklo_epi16(w1, w0);
      p.v[t][1] = _mm512_unpackhi_epi16(w1, w0);
      p.v[t][2] = _mm512_unpacklo_epi16(zero, w2);
      p.v[t][3] = _mm512_unpackhi_epi16(zero, w2);
      const __m512i ws[3] = {w0, w1, w2};
      for (int kd = 0; kd < 3; ++kd) {
        p.f[t][2 * kd] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, ws[kd]));
        p.f[t][2 * kd + 1] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, ws[kd]));
      }
    }
  }
}

// Sums of one output pixel's 32 channels, in the interleaved order.
struct Acc32 {
  __m512 lo, hi;
};

SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE void start32(Acc32& a, const float* bias) {
  const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
  const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(4));
  const __m512 b0 = _mm512_loadu_ps(bias), b1 = _mm512_loadu_ps(bias + 16);
  a.lo = _mm512_permutex2var_ps(b0, lo, b1);
  a.hi = _mm512_permutex2var_ps(b0, hi, b1);
}

// An input pixel's 32 channels of the three slices, interleaved: pair (kd 0 | 1), lone (kd 2 | 0).
struct Pix32 {
  __m512i pair_lo, pair_hi, lone_lo, lone_hi;
};

// Input pixel xi's channels [j, j + 32) of row r, zero where r is padding or xi lies past its
// ends (checked only when kEdge).
// Prefetches pixel xi + kAhead (the rows are too many streams for the hardware's prefetchers).
template <bool kEdge>
SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE __m512i load32(const uint16_t* r, const RowShape& s,
                                                        int64_t xi, int64_t j) {
  constexpr int64_t kAhead = 8;
  if (!r) return _mm512_setzero_si512();
  const auto at = reinterpret_cast<std::uintptr_t>(r + j);  // may lie past the row: only a hint
  __builtin_prefetch(reinterpret_cast<const void*>(at + (xi + kAhead) * s.c * 2), 0, 3);
  if (kEdge && (xi < 0 || xi >= s.w)) return _mm512_setzero_si512();
  return _mm512_loadu_si512(r + xi * s.c + j);
}

SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE void interleave(Pix32& p, __m512i s0, __m512i s1,
                                                         __m512i s2) {
  p.pair_lo = _mm512_unpacklo_epi16(s1, s0);
  p.pair_hi = _mm512_unpackhi_epi16(s1, s0);
  p.lone_lo = _mm512_unpacklo_epi16(_mm512_setzero_si512(), s2);
  p.lone_hi = _mm512_unpackhi_epi16(_mm512_setzero_si512(), s2);
}
template <bool kEdge>
SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE void interleave(Pix32& p, const uint16_t* r0,
                                                         const uint16_t* r1, const uint16_t* r2,
                                                         const RowShape& s, int64_t xi, int64_t j) {
  interleave(p, load32<kEdge>(r0, s, xi, j), load32<kEdge>(r1, s, xi, j),
             load32<kEdge>(r2, s, xi, j));
}

// The 32 channels at p, an input pixel inside its row (null: a padding row, zeros), prefetching
// the pixel kAhead on (as load32 does).
SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE __m512i load32_at(const uint16_t* p, int64_t c) {
  constexpr int64_t kAhead = 8;
  if (!p) return _mm512_setzero_si512();
  __builtin_prefetch(p + kAhead * c, 0, 3);
  return _mm512_loadu_si512(p);
}

// a += tap (kh, kw) of input pixel p: the pair, then the lone slice.
SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE void dot(Acc32& a, const Pix32& p, const __m512i* w) {
  a.lo = _mm512_dpbf16_ps(a.lo, (__m512bh)p.pair_lo, (__m512bh)w[0]);
  a.hi = _mm512_dpbf16_ps(a.hi, (__m512bh)p.pair_hi, (__m512bh)w[1]);
  a.lo = _mm512_dpbf16_ps(a.lo, (__m512bh)p.lone_lo, (__m512bh)w[2]);
  a.hi = _mm512_dpbf16_ps(a.hi, (__m512bh)p.lone_hi, (__m512bh)w[3]);
}

// [relu], rounded to bfloat16 as narrow() rounds (in the low half of each lane).
SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE __m512i rounded(__m512 v, bool relu) {
  typedef uint32_t u32x16 __attribute__((vector_size(64)));
  if (relu) v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), v);
  u32x16 u;
  std::memcpy(&u, &v, sizeof u);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  __m512i out;
  std::memcpy(&out, &u, sizeof out);
  return out;
}
SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE void store32(const Acc32& a, bool relu, uint16_t* p) {
  _mm512_storeu_si512(p, _mm512_packus_epi32(rounded(a.lo, relu), rounded(a.hi, relu)));
}

// The sums of four output pixels of two rows (a: the first, b: the second), as named members
// (GCC keeps them in registers; an array of them, or pointers to them, would live on the stack).
struct Sums32 {
  Acc32 a0, a1, a2, a3, b0, b1, b2, b3;
};
template <int P, bool kSecond>
SPINEPARSE_INLINE Acc32& sum_of(Sums32& x) {
  static_assert(P >= 0 && P < 4);
  if constexpr (P == 0) return kSecond ? x.b0 : x.a0;
  if constexpr (P == 1) return kSecond ? x.b1 : x.a1;
  if constexpr (P == 2) return kSecond ? x.b2 : x.a2;
  if constexpr (P == 3) return kSecond ? x.b3 : x.a3;
}

SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE void store4(Sums32& x, bool relu, uint16_t* out0,
                                                     uint16_t* out1, const RowShape& s, int64_t j,
                                                     int64_t x0, int64_t n) {
  const Acc32* a[4] = {&x.a0, &x.a1, &x.a2, &x.a3};
  const Acc32* b[4] = {&x.b0, &x.b1, &x.b2, &x.b3};
  for (int64_t p = 0; p < n; ++p) {
    store32(*a[p], relu, out0 + (x0 + p) * s.c + j);
    if (out1) store32(*b[p], relu, out1 + (x0 + p) * s.c + j);
  }
}

// The three slices of an input pixel as float32, in the interleaved channel order (each
// bfloat16 in the upper half of its lane), for the fused multiply-adds.
struct X3 {
  __m512 lo0, hi0, lo1, hi1, lo2, hi2;
};
SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE void widen3(X3& x, __m512i s0, __m512i s1, __m512i s2) {
  const __m512i z = _mm512_setzero_si512();
  x.lo0 = _mm512_castsi512_ps(_mm512_unpacklo_epi16(z, s0));
  x.hi0 = _mm512_castsi512_ps(_mm512_unpackhi_epi16(z, s0));
  x.lo1 = _mm512_castsi512_ps(_mm512_unpacklo_epi16(z, s1));
  x.hi1 = _mm512_castsi512_ps(_mm512_unpackhi_epi16(z, s1));
  x.lo2 = _mm512_castsi512_ps(_mm512_unpacklo_epi16(z, s2));
  x.hi2 = _mm512_castsi512_ps(_mm512_unpackhi_epi16(z, s2));
}

// a += tap t = 3 kh + kw of an input pixel: by dot products (Pix32, the pair then the lone
// slice) or by fused multiply-adds (X3, kd 0, 1, 2: each product of two bfloat16 values is
// exact, so each rounds once as the dot product's sums do).
SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE void tap(Acc32& a, const Pix32& p, const PairTaps& w,
                                                  int t) {
  dot(a, p, w.v[t]);
}
SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE void tap(Acc32& a, const X3& x, const PairTaps& w, int t) {
  const __m512* f = w.f[t];
  a.lo = _mm512_fmadd_ps(x.lo0, f[0], a.lo);
  a.hi = _mm512_fmadd_ps(x.hi0, f[1], a.hi);
  a.lo = _mm512_fmadd_ps(x.lo1, f[2], a.lo);
  a.hi = _mm512_fmadd_ps(x.hi1, f[3], a.hi);
  a.lo = _mm512_fmadd_ps(x.lo2, f[4], a.lo);
  a.hi = _mm512_fmadd_ps(x.hi2, f[5], a.hi);
}

// Tap kw of input pixel x0 - 1 + Q for output pixel P = Q - kw (where that is one of the four):
// kernel row i of the first output row, i - 1 of the second (kTwo).
template <int Q, int KW, bool kTwo, class Pixel>
SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE void tap_at(Sums32& x, const Pixel& v, const PairTaps& w,
                                                     int i) {
  constexpr int P = Q - KW;
  if constexpr (P >= 0 && P <= 3) {
    if (i < 3) tap(sum_of<P, false>(x), v, w, 3 * i + KW);
    if (kTwo && i > 0) tap(sum_of<P, true>(x), v, w, 3 * (i - 1) + KW);
  }
}

// Input row i's pixel x0 - 1 + Q, interleaved (kFma: widened) once for the taps it meets, kw =
// 0, 1, 2 in order. Inside the row (!kEdge) r[k] points at pixel x0 - 1 of row k's channel j
// (null: padding), so that a pixel's address is one add.
template <int Q, bool kTwo, class Pixel>
SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE void taps_at(Sums32& x, const Pixel& v, const PairTaps& w,
                                                      int i) {
  tap_at<Q, 0, kTwo>(x, v, w, i);
  tap_at<Q, 1, kTwo>(x, v, w, i);
  tap_at<Q, 2, kTwo>(x, v, w, i);
}
template <int Q, bool kEdge, bool kTwo, bool kFma>
SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE void position(Sums32& x, const uint16_t* const r[3],
                                                       const RowShape& s, int64_t c,
                                                       const PairTaps& w, int i, int64_t j,
                                                       int64_t x0) {
  __m512i s0, s1, s2;
  if constexpr (kEdge) {
    s0 = load32<true>(r[0], s, x0 - 1 + Q, j);
    s1 = load32<true>(r[1], s, x0 - 1 + Q, j);
    s2 = load32<true>(r[2], s, x0 - 1 + Q, j);
  } else {
    const int64_t at = Q * c;
    s0 = load32_at(r[0] ? r[0] + at : nullptr, c);
    s1 = load32_at(r[1] ? r[1] + at : nullptr, c);
    s2 = load32_at(r[2] ? r[2] + at : nullptr, c);
  }
  if constexpr (kFma) {
    X3 v;
    widen3(v, s0, s1, s2);
    taps_at<Q, kTwo>(x, v, w, i);
  } else {
    Pix32 v;
    interleave(v, s0, s1, s2);
    taps_at<Q, kTwo>(x, v, w, i);
  }
}

// Stride 1, dilation 1: output pixels [x0, x0 + n), n <= 4, channels [j, j + 32), of one row
// (rows[3 kd + kh]) or two (kTwo: rows[4 kd + i], input row i being kernel row i of the first and
// i - 1 of the second output row; each input pixel interleaved once for both). kFma: by fused
// multiply-adds, the bias starting as + 0 (a bias of -0 would otherwise keep a sign that the
// paired order's + 0 drops).
template <bool kEdge, bool kTwo, bool kFma = false>
SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE void block_dot_unit(const uint16_t* const* rows,
                                                             const RowShape& s, const PairTaps& w,
                                                             const float* bias, bool relu,
                                                             uint16_t* out0, uint16_t* out1,
                                                             int64_t j, int64_t x0, int64_t n) {
  Sums32 x;
  start32(x.a0, bias + j);
  if constexpr (kFma) {
    x.a0.lo = _mm512_add_ps(x.a0.lo, _mm512_setzero_ps());
    x.a0.hi = _mm512_add_ps(x.a0.hi, _mm512_setzero_ps());
  }
  x.a1 = x.a2 = x.a3 = x.b0 = x.b1 = x.b2 = x.b3 = x.a0;
  constexpr int kRows = kTwo ? 4 : 3, kStep = kTwo ? 4 : 3;
  const int64_t c = s.c, first = (x0 - 1) * c + j;  // inside the row: pixel x0 - 1's channel j
  auto at = [&](const uint16_t* row) { return kEdge || !row ? row : row + first; };
  for (int i = 0; i < kRows; ++i) {
    const uint16_t* const r[3] = {at(rows[i]), at(rows[kStep + i]), at(rows[2 * kStep + i])};
    position<0, kEdge, kTwo, kFma>(x, r, s, c, w, i, j, x0);
    position<1, kEdge, kTwo, kFma>(x, r, s, c, w, i, j, x0);
    position<2, kEdge, kTwo, kFma>(x, r, s, c, w, i, j, x0);
    position<3, kEdge, kTwo, kFma>(x, r, s, c, w, i, j, x0);
    position<4, kEdge, kTwo, kFma>(x, r, s, c, w, i, j, x0);
    position<5, kEdge, kTwo, kFma>(x, r, s, c, w, i, j, x0);
  }
  store4(x, relu, out0, kTwo ? out1 : nullptr, s, j, x0, n);
}

// Any stride and dilation: output pixels [x0, x0 + n), n <= 4, channels [j, j + 32) of one row.
template <int P, bool kEdge>
SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE void pixel_taps(Sums32& x, const uint16_t* const r[3],
                                                         const RowShape& s, const __m512i* w,
                                                         int64_t j, int64_t xi) {
  Pix32 v;
  interleave<kEdge>(v, r[0], r[1], r[2], s, xi, j);
  dot(sum_of<P, false>(x), v, w);
}
template <bool kEdge>
SPINEPARSE_BF16_TARGET SPINEPARSE_INLINE void block_dot(const uint16_t* const rows[9],
                                                        const RowShape& s, const PairTaps& w,
                                                        const float* bias, bool relu, uint16_t* out,
                                                        int64_t j, int64_t x0, int64_t n) {
  Sums32 x;
  start32(x.a0, bias + j);
  x.a1 = x.a2 = x.a3 = x.a0;
  for (int kh = 0; kh < 3; ++kh) {
    const uint16_t* const r[3] = {rows[kh], rows[3 + kh], rows[6 + kh]};
    for (int kw = 0; kw < 3; ++kw) {
      const int64_t xi = x0 * s.stride + (kw - 1) * s.dilation, step = s.stride;
      const __m512i* wk = w.v[3 * kh + kw];
      pixel_taps<0, kEdge>(x, r, s, wk, j, xi);
      pixel_taps<1, kEdge>(x, r, s, wk, j, xi + step);
      pixel_taps<2, kEdge>(x, r, s, wk, j, xi + 2 * step);
      pixel_taps<3, kEdge>(x, r, s, wk, j, xi + 3 * step);
    }
  }
  store4(x, relu, out, nullptr, s, j, x0, n);
}

SPINEPARSE_BF16_TARGET void row_avx512bf16(const uint16_t* const rows[9], const RowShape& s,
                                           const Taps& t, bool relu, uint16_t* out) {
  const float* bias = t.bias();
  const auto* taps = static_cast<const PairTaps*>(t.interleaved());
  if (!taps) return row_avx512(rows, s, t, relu, out);  // < 32 channels: the same sums
  const Interior inside(s);
  const bool unit = s.stride == 1 && s.dilation == 1;
  for (int64_t x0 = 0; x0 < s.out_w; x0 += 4) {
    const int64_t n = std::min<int64_t>(4, s.out_w - x0);
    const bool interior = inside(x0, n);
    std::size_t k = 0;
    for (int64_t j : Blocks{s.c, 32}) {
      const PairTaps& w = taps[k++];
      if (unit && interior)
        block_dot_unit<false, false>(rows, s, w, bias, relu, out, nullptr, j, x0, n);
      else if (unit)
        block_dot_unit<true, false>(rows, s, w, bias, relu, out, nullptr, j, x0, n);
      else if (interior)
        block_dot<false>(rows, s, w, bias, relu, out, j, x0, n);
      else
        block_dot<true>(rows, s, w, bias, relu, out, j, x0, n);
    }
  }
}

// kFma: the interior blocks by fused multiply-adds (block_fma_x2), the same sums.
template <bool kFma>
SPINEPARSE_BF16_TARGET void rows2_avx512bf16(const uint16_t* const rows[12], const RowShape& s,
                                             const Taps& t, bool relu, uint16_t* out0,
                                             uint16_t* out1) {
  const float* bias = t.bias();
  const auto* taps = static_cast<const PairTaps*>(t.interleaved());
  if (!taps) return rows2_avx512(rows, s, t, relu, out0, out1);  // the same sums
  for (int64_t x0 = 0; x0 < s.out_w; x0 += 4) {
    const int64_t n = std::min<int64_t>(4, s.out_w - x0);
    const bool interior = n == 4 && x0 >= 1 && x0 + 3 <= s.w - 2;
    std::size_t k = 0;
    for (int64_t j : Blocks{s.c, 32})
      if (interior && kFma)
        block_dot_unit<false, true, true>(rows, s, taps[k++], bias, relu, out0, out1, j, x0, 4);
      else if (interior)
        block_dot_unit<false, true>(rows, s, taps[k++], bias, relu, out0, out1, j, x0, 4);
      else
        block_dot_unit<true, true>(rows, s, taps[k++], bias, relu, out0, out1, j, x0, n);
  }
}

// Which AVX512_BF16 build computes two rows faster on this CPU: a VDPBF16PS does two taps, a fused
// multiply-add one, but where the dot product's throughput is a third of the multiply-add's (a
// 2-core Intel Xeon with AMX measured 0.35 against 0.11 ns per instruction) the multiply-adds
// win. Timed once, best of 5 rounds each, on 2 rows of 64 pixels of 64 channels (under 1 ms);
// either gives the same bytes.
int faster_bf16_build() {
  constexpr int64_t kW = 64, kC = 64;
  std::vector<uint16_t> x(12 * kW * kC, 0x3f80), out(2 * kW * kC);
  const Taps taps(std::vector<float>(27 * kC, 0.5f), std::vector<float>(kC, 0.f));
  const RowShape s{kW, kW, kC, 1, 1};
  const uint16_t* rows[12];
  for (int k = 0; k < 12; ++k) rows[k] = x.data() + k * kW * kC;
  auto best = [&](Rows2Fn<uint16_t> f) {
    double b = 1e30;
    for (int r = 0; r < 5; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < 8; ++i) f(rows, s, taps, false, out.data(), out.data() + kW * kC);
      b = std::min(b, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return b;
  };
  return best(&rows2_avx512bf16<true>) < best(&rows2_avx512bf16<false>) ? kAvx512Bf16Fma
                                                                        : kAvx512Bf16;
}
#undef SPINEPARSE_BF16_TARGET

// The widest build this CPU runs and oneDNN may use (cpu_features: ONEDNN_MAX_CPU_ISA=AVX2 holds
// these rows to AVX2 too, as a CPU without AVX-512 would run them).
int widest_here() {
  static const int w = [] {
    const int cpu = __builtin_cpu_supports("x86-64-v4")   ? kAvx512
                    : __builtin_cpu_supports("x86-64-v3") ? kAvx2
                                                          : kSse2;
    const CpuFeatures& f = cpu_features();
    const int allowed = f.avx512_bf16     ? kAvx512Bf16
                        : f.avx512f       ? kAvx512
                        : f.avx2 && f.fma ? kAvx2
                                          : kSse2;
    return std::min(cpu == kAvx512 ? kAvx512Bf16 : cpu, allowed);
  }();
  return w;
}

// The build calls use unless a test forces one: the widest, and of the two AVX512_BF16 builds the
// faster here.
int default_build() {
  static const int b = widest_here() == kAvx512Bf16 ? faster_bf16_build() : widest_here();
  return b;
}

template <class T>
Build<T> build() {
  const int forced = g_forced.load(std::memory_order_relaxed);
  switch (forced ? forced : default_build()) {
    case kAvx512Bf16Fma:
      if constexpr (std::is_same_v<T, uint16_t>) return {&row_avx512bf16, &rows2_avx512bf16<true>};
      [[fallthrough]];
    case kAvx512Bf16:
      if constexpr (std::is_same_v<T, uint16_t>) return {&row_avx512bf16, &rows2_avx512bf16<false>};
      [[fallthrough]];
    case kAvx512:
      return {&row_avx512<T>, &rows2_avx512<T>};
    case kAvx2:
      return {&row_avx2<T>, &rows2_avx2<T>};
    default:
      return {&row_sse2<T>, &rows2_sse2<T>};
  }
}
#else
SPINEPARSE_BUILD(generic, 8, )

int widest_here() { return kSse2; }

template <class T>
Build<T> build() {
  return {&row_generic<T>, &rows2_generic<T>};
}
#endif
#undef SPINEPARSE_BUILD
}  // namespace

std::vector<std::string> builds_here() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  std::vector<std::string> out;
  for (int b = kSse2; b <= widest_here(); ++b) out.emplace_back(kBuildNames[b]);
  if (widest_here() == kAvx512Bf16) out.emplace_back(kBuildNames[kAvx512Bf16Fma]);
  return out;
#else
  return {"generic"};
#endif
}

void use_build(const std::string& name) {
  int id = kDefault;
  for (int b = kSse2; b <= kAvx512Bf16Fma; ++b)
    if (name == kBuildNames[b]) id = b;
  const auto here = builds_here();  // elsewhere than x86-64 only "generic" (id kDefault)
  if (!name.empty() && std::find(here.begin(), here.end(), name) == here.end())
    throw std::invalid_argument("depthwise_rows::use_build: no build '" + name + "' on this CPU");
  g_forced.store(id, std::memory_order_relaxed);
}

Taps::Taps(std::vector<float> wt, std::vector<float> bias)
    : wt_(std::move(wt)), bias_(std::move(bias)) {
  const auto c = static_cast<int64_t>(bias_.size());
  if (static_cast<int64_t>(wt_.size()) != 27 * c)
    throw std::invalid_argument("depthwise_rows::Taps: " + std::to_string(wt_.size()) +
                                " weights for " + std::to_string(c) + " channels, not 27 each");
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  if (widest_here() < kAvx512Bf16 || c < 32) return;
  storage_.resize(static_cast<std::size_t>((c + 31) / 32) * sizeof(PairTaps) + 64);
  const auto at = (reinterpret_cast<std::uintptr_t>(storage_.data()) + 63) & ~std::uintptr_t{63};
  interleave_taps(wt_.data(), c, reinterpret_cast<PairTaps*>(at));
  interleaved_ = reinterpret_cast<const void*>(at);
#endif
}

void row_f32(const float* const rows[9], const RowShape& s, const Taps& taps, bool relu,
             float* out) {
  build<float>().row(rows, s, taps, relu, out);
}

void row_bf16(const uint16_t* const rows[9], const RowShape& s, const Taps& taps, bool relu,
              uint16_t* out) {
  build<uint16_t>().row(rows, s, taps, relu, out);
}

void rows2_f32(const float* const rows[12], const RowShape& s, const Taps& taps, bool relu,
               float* out0, float* out1) {
  build<float>().rows2(rows, s, taps, relu, out0, out1);
}

void rows2_bf16(const uint16_t* const rows[12], const RowShape& s, const Taps& taps, bool relu,
                uint16_t* out0, uint16_t* out1) {
  build<uint16_t>().rows2(rows, s, taps, relu, out0, out1);
}

#undef SPINEPARSE_INLINE

}  // namespace spineparse::nn::depthwise_rows
