// 2-D convolutions as oneDNN primitives on channels-last (NHWC) activations, with ReLU and a
// sum into the destination fused after them. Internal to lib/nn (the fused CPU networks); needs
// oneDNN's own headers (libdnnl-dev).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <vector>

namespace spineparse::nn::onednn {

// weight [O, I/groups, kh, kw] in the network's dtype (kh, kw: 1 or the odd size that `pad`
// keeps the output size for), bias float (any float dtype), padding and dilation as LibTorch
// counts them (dilation 1 = none), applied along the axes where the kernel is larger than 1.
//
// Quantized (int8): weight int8 and bias float already in the accumulator's units (bias / (source
// scale x weight scale)); oneDNN computes dst = relu(out_scales * (conv + bias) + sum_scale * dst),
// rounded and saturated into dst's type.
struct Int8Conv {
  dnnl::memory::data_type src = dnnl::memory::data_type::u8, dst = dnnl::memory::data_type::u8;
  std::vector<float> out_scales;  // one per output channel
  float sum_scale = 1.f;
};
struct ConvSpec {
  torch::Tensor weight, bias;
  int64_t stride = 1, pad = 0, dilation = 1, groups = 1;
  bool sum = false;              // dst = conv + dst (what the destination holds before)
  bool relu = false;             // then ReLU
  bool add_after = false;        // then dst = that + what dst held (after the ReLU; not with sum)
  bool float_out = false;        // float32 output whatever the network's dtype
  std::optional<Int8Conv> int8;  // set: a quantized convolution (the dtype argument is ignored)
};

// A convolution made for one input size [n, I, h, w]: the primitive, its weights in the layout
// it chose (reordered once), its activations' and scratchpad's descriptors.
struct ConvPrim {
  dnnl::convolution_forward conv;
  dnnl::memory weights, bias;
  dnnl::memory::desc src, dst, scratch;
  int64_t out_h = 0, out_w = 0, out_c = 0;
  // oneDNN's reference implementation: no kernel of this CPU's takes this convolution with these
  // post-ops (e.g. a sum after the ReLU on AVX2); correct, but tens to hundreds of times slower.
  bool reference = false;
};

const dnnl::engine& engine();
// Throws dnnl::error when oneDNN has no kernel for this dtype on this CPU.
ConvPrim make_conv(const ConvSpec& c, torch::ScalarType dtype, int64_t n, int64_t h, int64_t w);
// How many times run_conv has run a primitive of oneDNN's reference implementation (in this
// process).
int reference_convolutions_run();
// Runs p from src into dst (memory laid out as p's descriptors say) with a scratchpad of at least
// p.scratch.get_size() bytes.
void run_conv(const ConvPrim& p, dnnl::stream& s, const void* src, void* dst, void* scratch);

// oneDNN's int8 kernels as bench's peak probe times them (nn/peak.cpp): a 3x3 convolution of 128
// channels on 128 x 256 (uint8 in and out, as the int8 ResUNet2D runs) and an n^3 matrix product
// (uint8 x int8 -> int32). Each op runs once and waits; the flops count two per multiply-add.
struct Int8ProbeOps {
  std::function<void()> conv, gemm;
  double conv_flops = 0, gemm_flops = 0;
};
Int8ProbeOps int8_probe_ops(int64_t n);

}  // namespace spineparse::nn::onednn
