// One output row of a depthwise 3x3x3 convolution on channels-last activations (the GCSN's
// separable convolutions on the CPU), built once per vector width (x86-64: AVX-512, AVX2, SSE2)
// and run in the widest the CPU has and ONEDNN_MAX_CPU_ISA allows (nn::cpu_features), the same
// bytes in each. One pass over the input: every tap summed in float32 registers, then
// the bias, the ReLU and (bfloat16) one rounding to nearest even.
#pragma once
#include <cstdint>
#include <vector>

namespace spineparse::nn::depthwise_rows {

// The row's geometry: input rows of `w` pixels, `out_w` output pixels, `c` channels per pixel
// (contiguous); output pixel x reads input pixels x * stride + (k - 1) * dilation, k = 0, 1, 2
// (zero outside).
struct RowShape {
  int64_t w = 0, out_w = 0, c = 0, stride = 1, dilation = 1;
};

// out[x c + j] = [relu](bias[j] + sum over taps t = 3 (3 kd + kh) + kw
// of
//                wt[t c + j] * rows[3 kd + kh][(x stride + (kw - 1) dilation) c + j]),
// taps summed in that order (multiply, then add; no fused multiply-add). rows[i] null: that input
// row lies in the padding. wt: [27][c] float, bias [c] float.
void row_f32(const float* const rows[9], const RowShape& s, const float* wt, const float* bias,
             bool relu, float* out);
// The same on bfloat16 activations (raw bits), the sums in float32, rounded once at the end.
void row_bf16(const uint16_t* const rows[9], const RowShape& s, const float* wt, const float* bias,
              bool relu, uint16_t* out);

// Two output rows at once for stride 1 and dilation 1 (rows h and h + 1 of one slice), the same
// results as two calls of row_*: rows[4 kd + i] is input row h - 1 + i of slice d - 1 + kd (null:
// padding); each input row is read once for both outputs.
void rows2_f32(const float* const rows[12], const RowShape& s, const float* wt, const float* bias,
               bool relu, float* out0, float* out1);
void rows2_bf16(const uint16_t* const rows[12], const RowShape& s, const float* wt,
                const float* bias, bool relu, uint16_t* out0, uint16_t* out1);

// The vector widths (floats) built here that this CPU runs, narrowest first (x86-64: 4, 8 with
// AVX2 and FMA, 16 with AVX-512). use_width(w) makes every later call use width w, one of those
// (for tests, which compare the builds; not while other threads call the functions above);
// use_width(0) goes back to the widest.
std::vector<int> widths_here();
void use_width(int lanes);

}  // namespace spineparse::nn::depthwise_rows
