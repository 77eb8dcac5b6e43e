// CPU inference of a BatchNorm-folded ResUNet2D with oneDNN's convolution primitives called
// directly (the same oneDNN library LibTorch uses), so that what LibTorch 1.13 runs as separate
// passes over memory is fused into the convolutions: each residual block is three primitives,
// conv+ReLU, conv+ReLU, conv + sum(residual) + ReLU written in place over the residual. Activations
// are channels-last (NHWC, what oneDNN's AVX-512 and AMX kernels read and write), weights are
// reordered once into the layout each primitive asks for, and primitives are made once per input
// size. Float32 or bfloat16 (weights and activations; bias, accumulation and the logits in
// float32), or int8: weights quantized per output channel, activations uint8 after each ReLU and
// int8 where they can be negative (the input, the upsamplings, the skip sums), each with the
// scale its calibrated maximum gives; logits in float32. Internal to lib/nn: ResUNet2dImpl holds
// one through use_onednn_layout().
#pragma once

#include <torch/types.h>

#include <memory>
#include <vector>

namespace spineparse::nn {

struct ResUNet2dImpl;

class FusedResUNet {
 public:
  // The activations int8 needs a range for, in the order record_maxima() fills them: the input's
  // channels one by one (the MR and the coarse logits differ tenfold in range: each channel is
  // quantized at its own scale, folded into the first convolution's weights), per encoder its
  // three convolutions' outputs, per decoder its upsampling, the skip sum and its three
  // convolutions' outputs.
  static constexpr int kInputChannels = 21;
  static constexpr int kActivationPoints = kInputChannels + 5 * 3 + 4 * 5;

  // From a folded network (every block convolution has a bias); dtype kFloat, kBFloat16 or kChar
  // (int8, with `maxima`: the largest |value| of each activation point on calibration data).
  // Throws std::runtime_error when oneDNN has no kernel for the dtype on this CPU, and
  // std::invalid_argument for int8 without kActivationPoints positive maxima.
  FusedResUNet(const ResUNet2dImpl& net, torch::ScalarType dtype,
               const std::vector<float>& maxima = {});
  ~FusedResUNet();
  // x: [N, 21, H, W] channels-last, in the network's dtype (float32 for int8; H, W divisible by
  // 16) -> float32 logits [N, 20, H, W], channels-last. Thread-safe: concurrent calls share the
  // primitives.
  torch::Tensor forward(const torch::Tensor& x) const;
  // Float32 only: forward(x), raising maxima[i] (kActivationPoints entries) to each activation
  // point's largest |value|.
  torch::Tensor record_maxima(const torch::Tensor& x, std::vector<float>& maxima) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  torch::Tensor run(const torch::Tensor& x, std::vector<float>* maxima) const;
};

}  // namespace spineparse::nn
