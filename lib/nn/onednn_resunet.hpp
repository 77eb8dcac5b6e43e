// CPU inference of a BatchNorm-folded ResUNet2D with oneDNN's convolution primitives called
// directly (the same oneDNN library LibTorch uses), so that what LibTorch 1.13 runs as separate
// passes over memory is fused into the convolutions: each residual block is three primitives,
// conv+ReLU, conv+ReLU, conv + sum(residual) + ReLU written in place over the residual. Activations
// are channels-last (NHWC, what oneDNN's AVX-512 and AMX kernels read and write), weights are
// reordered once into the layout each primitive asks for, and primitives are made once per input
// size. Float32 or bfloat16 (weights and activations; bias, accumulation and the logits in
// float32). Internal to lib/nn: ResUNet2dImpl holds one through use_onednn_layout().
#pragma once

#include <torch/types.h>

#include <memory>

namespace spineparse::nn {

struct ResUNet2dImpl;

class FusedResUNet {
 public:
  // From a folded network (every block convolution has a bias); dtype kFloat or kBFloat16.
  // Throws std::runtime_error when oneDNN has no kernel for the dtype on this CPU.
  FusedResUNet(const ResUNet2dImpl& net, torch::ScalarType dtype);
  ~FusedResUNet();
  // x: [N, 21, H, W] channels-last in the network's dtype (H, W divisible by 16) -> float32
  // logits [N, 20, H, W], plain NCHW. Thread-safe: concurrent calls share the primitives.
  torch::Tensor forward(const torch::Tensor& x) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace spineparse::nn
