// The depthwise rows (nn/depthwise_rows.hpp), in every build this CPU runs (SSE2, AVX2, AVX-512,
// AVX512_BF16 with dot products or with fused multiply-adds), against scalar references that sum
// in the documented orders: the same bits in float32, the same bits in bfloat16; edges, strides,
// dilations, padding rows and channel counts that are no multiple of a vector.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "nn/depthwise_rows.hpp"

using namespace spineparse::nn::depthwise_rows;

namespace {
float from_bf16(uint16_t v) {
  const uint32_t u = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
uint16_t to_bf16(float f) {  // round to nearest, ties to even
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// One output row as the header states it, one multiply and one add at a time.
std::vector<float> reference(const std::vector<const float*>& rows, const RowShape& s,
                             const std::vector<float>& wt, const std::vector<float>& bias,
                             bool relu) {
  std::vector<float> out(static_cast<std::size_t>(s.out_w * s.c));
  for (int64_t x = 0; x < s.out_w; ++x)
    for (int64_t j = 0; j < s.c; ++j) {
      float acc = bias[j];
      for (int t = 0; t < 9; ++t)
        for (int kw = 0; kw < 3; ++kw) {
          const int64_t xi = x * s.stride + (kw - 1) * s.dilation;
          if (!rows[t] || xi < 0 || xi >= s.w) continue;
          const float p = wt[(t * 3 + kw) * s.c + j] * rows[t][xi * s.c + j];
          acc = acc + p;
        }
      out[x * s.c + j] = relu && !(acc > 0.f) ? 0.f : acc;
    }
  return out;
}

// bfloat16 as the header states it: the slices of each tap (kh, kw) in a row, then + 0.
std::vector<uint16_t> reference_bf16(const std::vector<const float*>& rows, const RowShape& s,
                                     const std::vector<float>& wt, const std::vector<float>& bias,
                                     bool relu) {
  std::vector<uint16_t> out(static_cast<std::size_t>(s.out_w * s.c));
  for (int64_t x = 0; x < s.out_w; ++x)
    for (int64_t j = 0; j < s.c; ++j) {
      float acc = bias[j];
      for (int kh = 0; kh < 3; ++kh)
        for (int kw = 0; kw < 3; ++kw) {
          const int64_t xi = x * s.stride + (kw - 1) * s.dilation;
          for (int kd = 0; kd < 3; ++kd) {
            const float* r = rows[3 * kd + kh];
            const float v = r && xi >= 0 && xi < s.w ? r[xi * s.c + j] : 0.f;
            const float p = wt[((3 * kd + kh) * 3 + kw) * s.c + j] * v;
            acc = acc + p;
          }
          acc = acc + 0.f;
        }
      out[x * s.c + j] = to_bf16(relu && !(acc > 0.f) ? 0.f : acc);
    }
  return out;
}

// Runs `check` once in each build this CPU runs (use_build), then goes back to the widest.
template <class F>
void in_every_build(F check) {
  for (const std::string& b : builds_here()) {
    SCOPED_TRACE("build " + b);
    use_build(b);
    check();
  }
  use_build("");
}

struct Case {
  RowShape shape;
  std::vector<std::vector<float>> data;  // four input rows of w pixels
  std::vector<float> wt, bias;
};
Taps taps(const Case& k) { return Taps(k.wt, k.bias); }

Case make_case(std::mt19937& rng, int64_t w, int64_t c, int64_t stride, int64_t dilation,
               bool bf16_values) {
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  // bfloat16 values over 2^-10 .. 2^10: sums that cancel, whose last bits depend on the order of
  // the additions even after rounding to bfloat16.
  auto value = [&] {
    if (!bf16_values) return u(rng);
    return from_bf16(to_bf16(std::ldexp(u(rng), static_cast<int>(rng() % 21) - 10)));
  };
  Case k;
  k.shape = RowShape{w, (w - 1) / stride + 1, c, stride, dilation};
  k.data.assign(4, std::vector<float>(static_cast<std::size_t>(w * c)));
  for (auto& r : k.data)
    for (auto& v : r) v = value();
  k.wt.resize(static_cast<std::size_t>(27 * c));
  for (auto& v : k.wt) v = value();
  k.bias.resize(static_cast<std::size_t>(c));
  for (auto& v : k.bias) v = u(rng);
  return k;
}
}  // namespace

TEST(DepthwiseRows, Float32IsTheReferenceBitForBit) {
  in_every_build([] {
    std::mt19937 rng(5);
    int checked = 0;
    for (int64_t c : {1, 16, 40, 64})
      for (int64_t w : {1, 3, 5, 13, 37})
        for (auto [stride, dilation] : {std::pair<int64_t, int64_t>{1, 1}, {2, 1}, {1, 2}, {1, 6}})
          for (bool relu : {false, true}) {
            const Case k = make_case(rng, w, c, stride, dilation, false);
            // Rows in the padding: the first kernel row of each slice, and the last slice.
            std::vector<const float*> rows(9);
            for (int t = 0; t < 9; ++t)
              rows[t] = t % 3 == 0 || t >= 6 ? nullptr : k.data[t % 4].data();
            std::vector<float> got(static_cast<std::size_t>(k.shape.out_w * c), -7.f);
            row_f32(rows.data(), k.shape, taps(k), relu, got.data());
            const auto want = reference(rows, k.shape, k.wt, k.bias, relu);
            ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
                << "c " << c << " w " << w << " stride " << stride << " dilation " << dilation;
            ++checked;
          }
    EXPECT_EQ(checked, 4 * 5 * 4 * 2);
  });
}

// A case's input rows as T: float as they are, uint16_t as bfloat16.
template <class T>
std::vector<std::vector<T>> values_as(const std::vector<std::vector<float>>& values) {
  if constexpr (std::is_same_v<T, float>) {
    return values;
  } else {
    std::vector<std::vector<T>> out;
    for (const auto& r : values) {
      out.emplace_back(r.size());
      for (std::size_t i = 0; i < r.size(); ++i) out.back()[i] = to_bf16(r[i]);
    }
    return out;
  }
}

TEST(DepthwiseRows, BFloat16IsItsReferenceBitForBit) {
  in_every_build([] {
    std::mt19937 rng(6);
    int checked = 0;
    for (int64_t c : {1, 16, 24, 40, 64, 152, 364})
      for (int64_t w : {1, 4, 9, 37, 64})
        for (auto [stride, dilation] : {std::pair<int64_t, int64_t>{1, 1}, {2, 1}, {1, 2}, {1, 6}})
          for (int padding : {-1, 0, 2}) {  // none, the first kernel row, the last slice
            const Case k = make_case(rng, w, c, stride, dilation, true);
            const auto b = values_as<uint16_t>(k.data);
            std::vector<const float*> rows(9);
            std::vector<const uint16_t*> rows16(9);
            for (int t = 0; t < 9; ++t) {
              const bool pad = padding == 0 ? t % 3 == 0 : padding == 2 && t >= 6;
              rows[t] = pad ? nullptr : k.data[(t + 1) % 4].data();
              rows16[t] = pad ? nullptr : b[(t + 1) % 4].data();
            }
            std::vector<uint16_t> got(static_cast<std::size_t>(k.shape.out_w * c), 0x7fc1);
            row_bf16(rows16.data(), k.shape, taps(k), checked % 2 == 0, got.data());
            const auto want = reference_bf16(rows, k.shape, k.wt, k.bias, checked % 2 == 0);
            ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(uint16_t)), 0)
                << "c " << c << " w " << w << " stride " << stride << " dilation " << dilation
                << " padding " << padding;
            ++checked;
          }
    EXPECT_EQ(checked, 7 * 5 * 4 * 3);
  });
}

// Two rows at once (rows2) give what two calls of the one-row function (row) give, padding rows
// included; T float or uint16_t (bfloat16).
template <class T, class Rows2, class Row>
void expect_two_single_rows(unsigned seed, std::initializer_list<int64_t> channels, Rows2 rows2,
                            Row row) {
  std::mt19937 rng(seed);
  for (int64_t c : channels)
    for (int64_t w : {2, 7, 33})
      for (int padding : {-1, 0, 3, 4}) {  // none, the row above, the row below, the last slice
        const Case k = make_case(rng, w, c, 1, 1, std::is_same_v<T, uint16_t>);
        const auto data = values_as<T>(k.data);
        const T* in[12];
        for (int kd = 0; kd < 3; ++kd)
          for (int i = 0; i < 4; ++i)
            in[4 * kd + i] =
                i == padding || (padding == 4 && kd == 2) ? nullptr : data[(i + kd) % 4].data();
        const int64_t n = k.shape.out_w * c;
        std::vector<T> pair(static_cast<std::size_t>(2 * n)), single(pair.size());
        rows2(in, k.shape, taps(k), true, pair.data(), pair.data() + n);
        for (int r = 0; r < 2; ++r) {
          const T* rows[9];
          for (int kd = 0; kd < 3; ++kd)
            for (int kh = 0; kh < 3; ++kh) rows[3 * kd + kh] = in[4 * kd + kh + r];
          row(rows, k.shape, taps(k), true, single.data() + r * n);
        }
        EXPECT_EQ(std::memcmp(pair.data(), single.data(), pair.size() * sizeof(T)), 0)
            << "c " << c << " w " << w << " padding row " << padding;
      }
}

TEST(DepthwiseRows, TwoRowsAtOnceAreTwoSingleRows) {
  in_every_build([] { expect_two_single_rows<float>(7, {16, 40}, rows2_f32, row_f32); });
}

TEST(DepthwiseRows, TwoBFloat16RowsAtOnceAreTwoSingleRows) {
  in_every_build([] { expect_two_single_rows<uint16_t>(8, {16, 40, 96}, rows2_bf16, row_bf16); });
}

// A bias of -0 with every product -0 (zero inputs, negative weights): the paired order's + 0
// after the first tap makes the sum +0, in every build and in two rows at once (the fused
// multiply-add rows start from bias + 0 for that), without the ReLU that would hide the sign.
TEST(DepthwiseRows, ANegativeZeroBiasEndsAsPlusZeroInBFloat16) {
  in_every_build([] {
    for (int64_t c : {16, 64}) {
      const int64_t w = 33, n = w * c;
      const RowShape s{w, w, c, 1, 1};
      const std::vector<uint16_t> zeros(static_cast<std::size_t>(n), 0);
      const Taps t(std::vector<float>(static_cast<std::size_t>(27 * c), -1.f),
                   std::vector<float>(static_cast<std::size_t>(c), -0.f));
      const uint16_t* in[12];
      for (auto& r : in) r = zeros.data();
      std::vector<uint16_t> out(static_cast<std::size_t>(2 * n), 0x7fc1);
      rows2_bf16(in, s, t, false, out.data(), out.data() + n);
      EXPECT_EQ(std::count(out.begin(), out.end(), uint16_t{0}), 2 * n) << "c " << c;
      std::fill(out.begin(), out.end(), uint16_t{0x7fc1});
      row_bf16(in, s, t, false, out.data());
      EXPECT_EQ(std::count(out.begin(), out.begin() + n, uint16_t{0}), n) << "c " << c;
    }
  });
}

// Where the order of the slices matters: each tap's three weights are +2^20, -2^20 and a small
// value in some order, over inputs of 1, so that an addition in another order than the header's
// (kd 0, 1, 2 for each kh, kw) keeps or loses the small value's bits. One row and two rows at
// once, in every build, against the reference bit for bit.
TEST(DepthwiseRows, TheSlicesOfATapAddInOrderInBFloat16) {
  in_every_build([] {
    std::mt19937 rng(11);
    const int64_t c = 64, w = 33, n = w * c;
    const RowShape s{w, w, c, 1, 1};
    std::vector<float> wt(static_cast<std::size_t>(27 * c));
    for (int t = 0; t < 9; ++t)  // t = 3 kh + kw
      for (int64_t j = 0; j < c; ++j) {
        const float small = from_bf16(to_bf16(std::ldexp(1.f + (rng() % 128) / 128.f, -1)));
        float three[3] = {std::ldexp(1.f, 20), -std::ldexp(1.f, 20), rng() % 2 ? small : -small};
        std::shuffle(three, three + 3, rng);
        for (int kd = 0; kd < 3; ++kd) wt[(9 * kd + t) * c + j] = three[kd];
      }
    const std::vector<float> bias(static_cast<std::size_t>(c), 0.f);
    const std::vector<float> ones(static_cast<std::size_t>(n), 1.f);
    const std::vector<uint16_t> ones16(static_cast<std::size_t>(n), to_bf16(1.f));
    const std::vector<const float*> rows(9, ones.data());
    const auto want = reference_bf16(rows, s, wt, bias, false);
    const Taps t(wt, bias);
    const uint16_t* in[12];
    for (auto& r : in) r = ones16.data();
    std::vector<uint16_t> got(static_cast<std::size_t>(2 * n));
    rows2_bf16(in, s, t, false, got.data(), got.data() + n);
    EXPECT_EQ(std::memcmp(got.data(), want.data(), n * sizeof(uint16_t)), 0) << "rows2, first";
    EXPECT_EQ(std::memcmp(got.data() + n, want.data(), n * sizeof(uint16_t)), 0) << "second";
    row_bf16(in, s, t, false, got.data());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), n * sizeof(uint16_t)), 0) << "row";
  });
}

TEST(DepthwiseRows, UseBuildRefusesABuildThisCpuDoesNotRun) {
  EXPECT_THROW(use_build("avx1024"), std::invalid_argument);
  const auto here = builds_here();
  ASSERT_FALSE(here.empty());
  for (const char* b : {"sse2", "avx2", "avx512", "avx512_bf16", "avx512_bf16_fma"}) {
    if (std::find(here.begin(), here.end(), b) == here.end()) {
      EXPECT_THROW(use_build(b), std::invalid_argument) << b;
    }
  }
  use_build("");
}

TEST(DepthwiseRows, TapsRefuseWeightsOfAnotherCount) {
  EXPECT_THROW(Taps(std::vector<float>(26), std::vector<float>(1)), std::invalid_argument);
  EXPECT_EQ(Taps(std::vector<float>(27 * 40), std::vector<float>(40)).channels(), 40);
}
