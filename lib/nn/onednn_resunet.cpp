#include "nn/onednn_resunet.hpp"

#include <torch/torch.h>

#include <cstring>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "nn/networks.hpp"
#include "nn/onednn_conv.hpp"

namespace spineparse::nn {
using onednn::ConvPrim;
using onednn::ConvSpec;
using Prim = ConvPrim;

struct FusedResUNet::Impl {
  torch::ScalarType dtype;
  std::vector<ConvSpec> convs;  // enc blocks (3 each), then per decoder: upsample, 3 block convs;
                                // the final 1x1 last
  std::mutex mu;
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::vector<Prim>> plans;  // by (N, H, W)

  Prim make(const ConvSpec& c, int64_t n, int64_t h, int64_t w) const {
    return onednn::make_conv(c, dtype, n, h, w);
  }
  const std::vector<Prim>& plan(int64_t n, int64_t h, int64_t w);
};

const std::vector<Prim>& FusedResUNet::Impl::plan(int64_t n, int64_t h, int64_t w) {
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_tuple(n, h, w);
  if (auto it = plans.find(key); it != plans.end()) return it->second;
  std::vector<Prim> prims;
  std::size_t i = 0;
  int64_t hh = h, ww = w;
  for (int k = 0; k < 5; ++k) {  // encoders: each level at half the size of the one before
    if (k > 0) hh /= 2, ww /= 2;
    for (int j = 0; j < 3; ++j) prims.push_back(make(convs[i++], n, hh, ww));
  }
  for (int k = 0; k < 4; ++k) {  // decoders: the sub-pixel upsampling, then the block
    prims.push_back(make(convs[i++], n, hh, ww));
    hh *= 2, ww *= 2;
    for (int j = 0; j < 3; ++j) prims.push_back(make(convs[i++], n, hh, ww));
  }
  prims.push_back(make(convs[i++], n, hh, ww));
  return plans.emplace(key, std::move(prims)).first->second;
}

FusedResUNet::FusedResUNet(const ResUNet2dImpl& net, torch::ScalarType dtype)
    : impl_(std::make_unique<Impl>()) {
  impl_->dtype = dtype;
  auto block = [&](const ExtResBlock& b) {
    for (int j = 0; j < 3; ++j) {
      if (!b->conv[j]->bias.defined())
        throw std::logic_error("FusedResUNet: fold the BatchNorms first");
      ConvSpec c;
      c.weight = b->conv[j]->weight;
      c.bias = b->conv[j]->bias;
      c.pad = 1;
      c.sum = j == 2;
      c.relu = true;
      impl_->convs.push_back(c);
    }
  };
  for (const auto& e : net.encoders_) block(e);
  for (std::size_t k = 0; k < net.decoders_.size(); ++k) {
    const auto& u = net.upsample_[k];
    ConvSpec c;
    c.weight = subpixel_weights(u->weight);
    c.bias = u->bias.repeat({4});
    c.pad = 1;
    impl_->convs.push_back(c);
    block(net.decoders_[k]);
  }
  const auto& f = net.final_conv;
  ConvSpec last;
  last.weight = f->weight;
  last.bias = f->bias;
  last.float_out = true;
  impl_->convs.push_back(last);
  // oneDNN may have no kernel for this dtype on this CPU (bfloat16 below AVX-512): find out now.
  try {
    for (const auto& c : {impl_->convs.front(), impl_->convs[15], impl_->convs.back()})
      (void)impl_->make(c, 1, 16, 16);
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("oneDNN has no ") + c10::toString(dtype) +
                             " convolution for this CPU: " + e.what());
  }
}

FusedResUNet::~FusedResUNet() = default;

torch::Tensor FusedResUNet::forward(const torch::Tensor& x) const {
  const int64_t N = x.size(0), H = x.size(2), W = x.size(3);
  if (H % 16 || W % 16) throw std::runtime_error("FusedResUNet: H and W must be divisible by 16");
  const auto& prims = impl_->plan(N, H, W);
  std::size_t scratch_bytes = 0;
  for (const auto& p : prims) scratch_bytes = std::max(scratch_bytes, p.scratch.get_size());
  auto scratch = torch::empty({static_cast<int64_t>(scratch_bytes) + 1}, torch::kUInt8);
  dnnl::stream s(onednn::engine());
  const auto cl = torch::MemoryFormat::ChannelsLast;
  const auto act_opts = x.options().dtype(impl_->dtype);
  auto run = [&](const Prim& p, const torch::Tensor& src, const torch::Tensor& dst) {
    onednn::run_conv(p, s, src.data_ptr(), dst.data_ptr(), scratch.data_ptr());
  };
  auto empty = [&](int64_t c, int64_t h, int64_t w) {
    return torch::empty({N, c, h, w}, act_opts, cl);
  };
  std::size_t i = 0;
  // A residual block: a = relu(conv0(x)); relu(conv2(relu(conv1(a))) + a), written over a.
  auto block = [&](const torch::Tensor& in) {
    const int64_t c = prims[i].out_c, h = in.size(2), w = in.size(3);
    auto a = empty(c, h, w), b = empty(c, h, w);
    run(prims[i++], in, a);
    run(prims[i++], a, b);
    run(prims[i++], b, a);
    return a;
  };
  std::vector<torch::Tensor> feats;
  torch::Tensor cur = x;
  for (int k = 0; k < 5; ++k) {
    if (k > 0) cur = torch::max_pool2d(cur, {2, 2}, {2, 2}).contiguous(cl);
    cur = block(cur);
    feats.push_back(cur);
  }
  for (int k = 0; k < 4; ++k) {
    const Prim& up = prims[i++];
    auto z = empty(up.out_c, up.out_h, up.out_w);
    run(up, cur, z);
    // feats[3-k] += the transposed convolution's output, read phase by phase from z.
    const int64_t h = cur.size(2), w = cur.size(3), c = up.out_c / 4;
    auto phases = z.permute({0, 2, 3, 1}).slice(1, 1).slice(2, 1).view({N, h, w, 2, 2, c});
    auto& skip = feats[3 - k];
    skip.permute({0, 2, 3, 1}).view({N, h, 2, w, 2, c}).add_(phases.permute({0, 1, 3, 2, 4, 5}));
    cur = block(skip);
  }
  const Prim& last = prims[i++];
  auto logits = torch::empty({N, last.out_c, H, W}, x.options().dtype(torch::kFloat32), cl);
  run(last, cur, logits);
  s.wait();
  return logits.contiguous();
}

}  // namespace spineparse::nn
