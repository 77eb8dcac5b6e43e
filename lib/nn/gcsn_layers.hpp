// The GCSN's internal layers (its Xception backbone and the typed handles GcsnImpl registers),
// shared by the files of this library that build, prepare and measure the network. Private to
// lib/nn: it includes LibTorch.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>

#include "nn/networks.hpp"

namespace spineparse::nn {
using torch::nn::BatchNorm3d;
using torch::nn::BatchNorm3dOptions;
using torch::nn::Conv3d;
using torch::nn::Conv3dOptions;

struct XceptionImpl : torch::nn::Module {
  explicit XceptionImpl(const std::function<int64_t(int64_t)>& c) {
    conv1 = register_module(
        "conv1", Conv3d(Conv3dOptions(1, c(16), 3).stride({1, 2, 2}).padding(1).bias(false)));
    bn1 = register_module("bn1", BatchNorm3d(BatchNorm3dOptions(c(16))));
    conv2 = register_module("conv2", Conv3d(Conv3dOptions(c(16), c(32), 3).padding(1).bias(false)));
    bn2 = register_module("bn2", BatchNorm3d(BatchNorm3dOptions(c(32))));
    block1 = register_module("block1", XceptionBlock(1, c(32), c(64)));
    block2 = register_module("block2", XceptionBlock(2, c(64), c(128)));
    block3 = register_module("block3", XceptionBlock(3, c(128), c(364)));
    block20 = register_module("block20", XceptionBlock(20, c(364), c(512)));
    conv3 = register_module("conv3",
                            SeparableConv(c(512), c(768), std::vector<int64_t>{1, 1, 1}, 2, true));
    conv4 = register_module("conv4",
                            SeparableConv(c(768), c(768), std::vector<int64_t>{1, 1, 1}, 2, true));
    conv5 = register_module("conv5",
                            SeparableConv(c(768), c(1024), std::vector<int64_t>{1, 1, 1}, 2, true));
  }
  Conv3d conv1{nullptr}, conv2{nullptr};
  BatchNorm3d bn1{nullptr}, bn2{nullptr};
  XceptionBlock block1{nullptr}, block2{nullptr}, block3{nullptr}, block20{nullptr};
  SeparableConv conv3{nullptr}, conv4{nullptr}, conv5{nullptr};
};

// The GCSN's layers, kept in a struct so that the module's forward reads like spec 3.2.
struct GcsnLayers {
  std::shared_ptr<XceptionImpl> xf;
  Conv3d aspp1_conv{nullptr};
  BatchNorm3d aspp1_bn{nullptr};
  SeparableConv aspp2{nullptr}, aspp3{nullptr}, aspp4{nullptr};
  Conv3d gap_conv{nullptr};
  BatchNorm3d gap_bn{nullptr};
  Conv3d concat_conv{nullptr}, proj4_conv{nullptr}, proj2_conv{nullptr};
  BatchNorm3d concat_bn{nullptr}, proj4_bn{nullptr}, proj2_bn{nullptr};
  SeparableConv dec1a{nullptr}, dec1b{nullptr}, dec2a{nullptr}, dec2b{nullptr};
  torch::Tensor pre_fea, graph_weight, gc1, gc2, gc3;
  Conv3d g2f_conv{nullptr};
  BatchNorm3d g2f_bn{nullptr};
  Conv3d skip_conv{nullptr};
  Conv3d semantic{nullptr};
  // The plain convolutions above (entry convolutions and 1x1x1 ones) that run as fused oneDNN
  // convolutions, set by split_depthwise_convolutions() where this library has oneDNN's own API.
  std::map<const torch::nn::Conv3dImpl*, std::shared_ptr<const FusedConv3d>> fused;
  // The graph module's products of the features with pre_fea and graph_weight (X pre_fea and
  // X graph_weight, X = the voxels' features) as 1x1x1 convolutions: set with `fused`.
  std::shared_ptr<const FusedConv3d> fused_pre_fea, fused_graph_weight;
  const FusedConv3d* fused_of(const Conv3d& conv) const {
    const auto it = fused.find(conv.get());
    return it == fused.end() ? nullptr : it->second.get();
  }
};

}  // namespace spineparse::nn
