// CPU inference of one of the GCSN's separable convolutions (depthwise 3x3x3, then pointwise
// 1x1x1, stride 1 along the slices, BatchNorms folded) as oneDNN primitives on channels-last-3d
// activations: the depthwise convolution as its three kernel planes, each a 2-D depthwise
// convolution over all slices at once whose result is summed into the output shifted by its
// plane's slice offset (oneDNN's sum post-op: no separate additions), the last plane adding the
// bias and the ReLU; then the pointwise convolution with its bias and ReLU fused. Internal to
// lib/nn: SeparableConvImpl holds one through split_depthwise_convolutions().
#pragma once

#include <torch/types.h>

#include <memory>

namespace spineparse::nn {

struct SeparableConvImpl;

class FusedSeparableConv {
 public:
  // From a folded separable convolution (both convolutions have biases) of weights in `dtype`
  // (kFloat or kBFloat16). Throws std::runtime_error when oneDNN has no kernel for it here.
  FusedSeparableConv(const SeparableConvImpl& s, torch::ScalarType dtype);
  ~FusedSeparableConv();
  // x [N, C, D, H, W] in the network's dtype (made channels-last-3d if it is not) ->
  // [N, O, D, H', W'] in channels-last-3d memory. Thread-safe.
  torch::Tensor forward(const torch::Tensor& x) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace spineparse::nn
