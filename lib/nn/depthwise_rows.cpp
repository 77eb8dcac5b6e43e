#include "nn/depthwise_rows.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

#include "nn/precision.hpp"

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

template <class V, class T>
SPINEPARSE_INLINE void row(const T* const rows[9], const RowShape& s, const float* wt,
                           const float* bias, bool relu, T* out) {
  // Output pixels whose three taps all lie inside the row: [first, last].
  const int64_t first = (s.dilation + s.stride - 1) / s.stride,
                last = (s.w - 1 - s.dilation) / s.stride;
  const bool unit = s.stride == 1 && s.dilation == 1;
  for (int64_t x0 = 0; x0 < s.out_w; x0 += 4) {
    const int64_t n = std::min<int64_t>(4, s.out_w - x0);
    const bool interior = n == 4 && x0 >= first && x0 + 3 <= last;
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

template <class V, class T>
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
    for (int64_t j : Blocks{s.c, V::kN})
      if (interior) {
        block_x2<V>(rows, s, wt, bias, relu, out0, out1, j, x0);
      } else {
        block_edge<V>(rows0, s, wt, bias, relu, out0, j, x0, n);
        block_edge<V>(rows1, s, wt, bias, relu, out1, j, x0, n);
      }
  }
  for (int64_t j = 0; j < s.c && s.c < V::kN; ++j) {
    channel(rows0, s, wt, bias, relu, out0, j);
    channel(rows1, s, wt, bias, relu, out1, j);
  }
}

template <class T>
using RowFn = void (*)(const T* const*, const RowShape&, const float*, const float*, bool, T*);
template <class T>
using Rows2Fn = void (*)(const T* const*, const RowShape&, const float*, const float*, bool, T*,
                         T*);

// One build per vector width: row and rows2 on L lanes, compiled for a CPU that has that width.
#define SPINEPARSE_BUILD(name, L, target)                                               \
  template <class T>                                                                    \
  target void row_##name(const T* const rows[9], const RowShape& s, const float* wt,    \
                         const float* bias, bool relu, T* out) {                        \
    row<Lanes<L>>(rows, s, wt, bias, relu, out);                                        \
  }                                                                                     \
  template <class T>                                                                    \
  target void rows2_##name(const T* const rows[12], const RowShape& s, const float* wt, \
                           const float* bias, bool relu, T* out0, T* out1) {            \
    rows2<Lanes<L>>(rows, s, wt, bias, relu, out0, out1);                               \
  }

template <class T>
struct Build {
  RowFn<T> row;
  Rows2Fn<T> rows2;
};

// Set by use_width (tests); 0: the widest this CPU runs.
std::atomic<int> g_forced{0};

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
SPINEPARSE_BUILD(avx512, 16, __attribute__((target("arch=x86-64-v4"))))
SPINEPARSE_BUILD(avx2, 8, __attribute__((target("arch=x86-64-v3"))))
SPINEPARSE_BUILD(sse2, 4, )

// The widest build this CPU runs and oneDNN may use (cpu_features: ONEDNN_MAX_CPU_ISA=AVX2 holds
// these rows to AVX2 too, as a CPU without AVX-512 would run them).
int widest_here() {
  static const int w = [] {
    const int cpu = __builtin_cpu_supports("x86-64-v4")   ? 16
                    : __builtin_cpu_supports("x86-64-v3") ? 8
                                                          : 4;
    const CpuFeatures& f = cpu_features();
    return std::min(cpu, f.avx512f ? 16 : f.avx2 && f.fma ? 8 : 4);
  }();
  return w;
}

template <class T>
Build<T> build() {
  const int forced = g_forced.load(std::memory_order_relaxed);
  switch (forced ? forced : widest_here()) {
    case 16:
      return {&row_avx512<T>, &rows2_avx512<T>};
    case 8:
      return {&row_avx2<T>, &rows2_avx2<T>};
    default:
      return {&row_sse2<T>, &rows2_sse2<T>};
  }
}
#else
SPINEPARSE_BUILD(generic, 8, )

int widest_here() { return 8; }

template <class T>
Build<T> build() {
  return {&row_generic<T>, &rows2_generic<T>};
}
#endif
#undef SPINEPARSE_BUILD
}  // namespace

std::vector<int> widths_here() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  std::vector<int> out;
  for (int w : {4, 8, 16})
    if (w <= widest_here()) out.push_back(w);
  return out;
#else
  return {widest_here()};
#endif
}

void use_width(int lanes) { g_forced.store(lanes, std::memory_order_relaxed); }

void row_f32(const float* const rows[9], const RowShape& s, const float* wt, const float* bias,
             bool relu, float* out) {
  build<float>().row(rows, s, wt, bias, relu, out);
}

void row_bf16(const uint16_t* const rows[9], const RowShape& s, const float* wt, const float* bias,
              bool relu, uint16_t* out) {
  build<uint16_t>().row(rows, s, wt, bias, relu, out);
}

void rows2_f32(const float* const rows[12], const RowShape& s, const float* wt, const float* bias,
               bool relu, float* out0, float* out1) {
  build<float>().rows2(rows, s, wt, bias, relu, out0, out1);
}

void rows2_bf16(const uint16_t* const rows[12], const RowShape& s, const float* wt,
                const float* bias, bool relu, uint16_t* out0, uint16_t* out1) {
  build<uint16_t>().rows2(rows, s, wt, bias, relu, out0, out1);
}

#undef SPINEPARSE_INLINE

}  // namespace spineparse::nn::depthwise_rows
