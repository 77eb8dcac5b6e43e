// CPU inference of the GCSN's 3-D convolutions (BatchNorms folded, stride 1 along the slices) as
// oneDNN 2-D convolutions on channels-last-3d activations, all slices at once.
//
// FusedConv3d: a convolution of kernel 1 or 3 along every axis (padding = dilation) as one 2-D
// convolution per kernel plane, each over all slices at once, summed into the output shifted by
// its plane's slice offset (oneDNN's sum post-op: no separate additions), the centre plane last
// with the bias and the ReLU. Kernel 1 (the 1x1x1 convolutions) is one 2-D 1x1 convolution over
// the slices, with its in-plane stride; it can also add its result into an existing tensor.
//
// FusedSeparableConv: the separable convolution (depthwise 3x3x3, then pointwise 1x1x1), tile by
// tile: a few rows of the depthwise result (nn/depthwise_rows.hpp, one pass over the input), then
// the pointwise convolution of them (a FusedConv3d) while they are in the cache. Internal to
// lib/nn: SeparableConvImpl holds one, and the GCSN's other convolutions one each, through
// split_depthwise_convolutions().
#pragma once

#include <torch/types.h>

#include <memory>
#include <vector>

namespace spineparse::nn {

struct SeparableConvImpl;

class FusedConv3d {
 public:
  // weight [O, I/groups, k, k, k] (k 1 or 3) and bias [O] (undefined: none), computed in `dtype`
  // (kFloat or kBFloat16); `stride`: in the plane (1 along the slices). Throws
  // std::runtime_error when oneDNN has no kernel for it here.
  FusedConv3d(const torch::Tensor& weight, const torch::Tensor& bias, int64_t dilation,
              int64_t stride, int64_t groups, torch::ScalarType dtype);
  ~FusedConv3d();
  // x [N, I, D, H, W] (made channels-last-3d in `dtype` if it is not) -> [N, O, D, H', W'] in
  // channels-last-3d memory; `relu`: the ReLU fused. Thread-safe.
  torch::Tensor forward(const torch::Tensor& x, bool relu) const;
  // The same into dst (channels-last-3d, of the output's shape and dtype); with `add` (kernel 1
  // only): dst = [relu](conv(x) + bias) + dst.
  void forward_into(const torch::Tensor& x, torch::Tensor& dst, bool relu, bool add = false) const;
  // Kernel 1 only: the convolution of `rows` rows of `w` pixels (channels-last, contiguous, in the
  // dtype) from src into dst, [relu](conv + bias). Inside a parallel region (at::parallel_for) it
  // runs on the calling thread. Thread-safe.
  void run_rows(const void* src, int64_t rows, int64_t w, void* dst, bool relu) const;
  int64_t input_channels() const;
  // The output's sizes for an input of these sizes, and that output (uninitialised,
  // channels-last-3d, in the convolution's dtype).
  std::vector<int64_t> output_sizes(at::IntArrayRef input_sizes) const;
  torch::Tensor output_for(at::IntArrayRef input_sizes, const torch::TensorOptions& options) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class FusedSeparableConv {
 public:
  // From a folded separable convolution (both convolutions have biases) of weights in `dtype`
  // (kFloat or kBFloat16). Throws std::runtime_error when oneDNN has no kernel for it here.
  FusedSeparableConv(const SeparableConvImpl& s, torch::ScalarType dtype);
  ~FusedSeparableConv();
  // x [N, C, D, H, W] in the network's dtype (made channels-last-3d if it is not) ->
  // [N, O, D, H', W'] in channels-last-3d memory; `relu`: a ReLU after it (besides the
  // convolution's own activations). Thread-safe.
  torch::Tensor forward(const torch::Tensor& x, bool relu = false) const;
  // forward(x, relu), then the 1x1x1 convolution `then` (no ReLU; in-plane stride 1, of this
  // convolution's output channels and dtype) on each tile's result while it is in the cache:
  // [N, then's O, D, H', W'] in channels-last-3d memory, forward's result never in memory.
  torch::Tensor forward_then(const torch::Tensor& x, bool relu, const FusedConv3d& then) const;

 private:
  struct Depthwise;
  static int64_t tile_bytes();
  torch::Tensor run(const torch::Tensor& x, bool relu, const FusedConv3d* then) const;
  torch::ScalarType dtype_;
  std::unique_ptr<const Depthwise> depthwise_;
  std::unique_ptr<const FusedConv3d> pointwise_;
  bool activations_;
};

}  // namespace spineparse::nn
