// One output row of a depthwise 3x3x3 convolution on channels-last activations (the GCSN's
// separable convolutions on the CPU), built once per vector width (x86-64: AVX-512, AVX2, SSE2;
// and for bfloat16 AVX512_BF16's dot products) and run in the widest the CPU has and
// ONEDNN_MAX_CPU_ISA allows (nn::cpu_features), the same bytes in each. One pass over the input:
// every tap summed in float32 registers, then the bias, the ReLU and (bfloat16) one rounding to
// nearest even.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace spineparse::nn::depthwise_rows {

// The row's geometry: input rows of `w` pixels, `out_w` output pixels, `c` channels per pixel
// (contiguous); output pixel x reads input pixels x * stride + (k - 1) * dilation, k = 0, 1, 2
// (zero outside).
struct RowShape {
  int64_t w = 0, out_w = 0, c = 0, stride = 1, dilation = 1;
};

// A layer's weights as the rows read them: wt [27][c] float (tap t = 3 (3 kd + kh) + kw;
// bfloat16 values for the bfloat16 rows) and bias [c] float; where the CPU runs the AVX512_BF16
// build, also its interleaved bfloat16 taps, made once here. Throws std::invalid_argument unless
// wt has 27 c values.
class Taps {
 public:
  Taps(std::vector<float> wt, std::vector<float> bias);
  Taps(const Taps&) = delete;  // interleaved() points into this object's storage
  Taps& operator=(const Taps&) = delete;
  Taps(Taps&&) = default;
  Taps& operator=(Taps&&) = default;
  int64_t channels() const { return static_cast<int64_t>(bias_.size()); }
  const float* wt() const { return wt_.data(); }
  const float* bias() const { return bias_.data(); }
  const void* interleaved() const { return interleaved_; }  // null where not made

 private:
  std::vector<float> wt_, bias_;
  std::vector<char> storage_;
  const void* interleaved_ = nullptr;
};

// float32: out[x c + j] = [relu](bias[j] + sum over taps t = 3 (3 kd + kh) + kw of
//                wt[t c + j] * rows[3 kd + kh][(x stride + (kw - 1) dilation) c + j]),
// taps summed in that order (multiply, then add; no fused multiply-add). rows[i] null: that input
// row lies in the padding. s.c == taps.channels().
void row_f32(const float* const rows[9], const RowShape& s, const Taps& taps, bool relu,
             float* out);
// bfloat16 activations (raw bits): the same sum in another order, that of AVX512_BF16's paired
// dot products: bias, then for kh = 0, 1, 2 and kw = 0, 1, 2 the taps of kd = 0, 1, 2 and then
// + 0 (a multiply, then an add; the products are exact), a tap in the padding or past the row's
// ends adding w * 0; rounded once at the end. In the AVX512_BF16 build, inputs and sums below
// 2^-126 in magnitude count as zero.
void row_bf16(const uint16_t* const rows[9], const RowShape& s, const Taps& taps, bool relu,
              uint16_t* out);

// Two output rows at once for stride 1 and dilation 1 (rows h and h + 1 of one slice), the same
// results as two calls of row_*: rows[4 kd + i] is input row h - 1 + i of slice d - 1 + kd (null:
// padding); each input row is read once for both outputs.
void rows2_f32(const float* const rows[12], const RowShape& s, const Taps& taps, bool relu,
               float* out0, float* out1);
void rows2_bf16(const uint16_t* const rows[12], const RowShape& s, const Taps& taps, bool relu,
                uint16_t* out0, uint16_t* out1);

// The builds here that this CPU runs, narrowest first: "sse2", "avx2", "avx512", "avx512_bf16"
// (its float32 rows are avx512's) and "avx512_bf16_fma" (the same, but two rows at once by float32
// fused multiply-adds, exact for products of bfloat16 values: the same bytes). Calls use the
// widest, and of the two AVX512_BF16 builds the one a first call times faster on this CPU.
// use_build(name) makes every later call use that build (for tests, which compare the builds; not
// while other threads call the functions above; throws for a name not built here); use_build("")
// goes back to the widest.
std::vector<std::string> builds_here();
void use_build(const std::string& name);

}  // namespace spineparse::nn::depthwise_rows
