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

namespace spineparse::nn {
namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;

const dnnl::engine& cpu_engine() {
  static const dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

memory::data_type dnnl_type(torch::ScalarType t) {
  return t == torch::kBFloat16 ? memory::data_type::bf16 : memory::data_type::f32;
}

// One convolution of the network: weights [O, I, k, k] (the network's dtype), float32 bias,
// padding, and what is fused after it.
struct ConvSpec {
  torch::Tensor weight, bias;
  int64_t pad = 0;
  bool sum = false;   // dst = conv + dst (the residual, already in the output buffer)
  bool relu = false;  // then ReLU
  bool float_out = false;
};

// A convolution made for one input size: the primitive, its weights in the layout it chose, the
// memory descriptors of its activations and its scratchpad size.
struct Prim {
  dnnl::convolution_forward conv;
  memory weights, bias;
  memory::desc src, dst, scratch_md;
  std::size_t scratch = 0;
};

}  // namespace

struct FusedResUNet::Impl {
  torch::ScalarType dtype;
  std::vector<ConvSpec> convs;  // enc blocks (3 each), then per decoder: upsample, 3 block convs;
                                // the final 1x1 last
  std::mutex mu;
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::vector<Prim>> plans;  // by (N, H, W)

  Prim make(const ConvSpec& c, int64_t n, int64_t h, int64_t w) const;
  const std::vector<Prim>& plan(int64_t n, int64_t h, int64_t w);
};

namespace {
int64_t out_size(int64_t n, int64_t k, int64_t pad) { return n + 2 * pad - k + 1; }
}  // namespace

Prim FusedResUNet::Impl::make(const ConvSpec& c, int64_t n, int64_t h, int64_t w) const {
  const auto dt = dnnl_type(dtype);
  const int64_t O = c.weight.size(0), I = c.weight.size(1), k = c.weight.size(2);
  const memory::dims pad = {c.pad, c.pad};
  memory::desc src({n, I, h, w}, dt, tag::nhwc);
  memory::desc wei({O, I, k, k}, dt, tag::any);
  memory::desc bia({O}, memory::data_type::f32, tag::a);
  memory::desc dst({n, O, out_size(h, k, c.pad), out_size(w, k, c.pad)},
                   c.float_out ? memory::data_type::f32 : dt, tag::nhwc);
  dnnl::post_ops po;
  if (c.sum) po.append_sum(1.f);
  if (c.relu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(po);
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                    dnnl::algorithm::convolution_direct, src, wei, bia, dst, {1, 1},
                                    pad, pad);
  dnnl::convolution_forward::primitive_desc pd(d, attr, cpu_engine());
  Prim p;
  p.conv = dnnl::convolution_forward(pd);
  p.src = pd.src_desc();
  p.dst = pd.dst_desc();
  p.scratch_md = pd.scratchpad_desc();
  p.scratch = p.scratch_md.get_size();
  // Weights and bias: reordered (and converted) once into memory the primitive owns.
  auto user_w = c.weight.contiguous();
  memory user(memory::desc({O, I, k, k}, dt, tag::oihw), cpu_engine(), user_w.data_ptr());
  p.weights = memory(pd.weights_desc(), cpu_engine());
  dnnl::stream s(cpu_engine());
  dnnl::reorder(user, p.weights).execute(s, user, p.weights);
  p.bias = memory(bia, cpu_engine());
  auto b = c.bias.to(torch::kFloat32).contiguous();
  std::memcpy(p.bias.get_data_handle(), b.data_ptr(), static_cast<std::size_t>(O) * sizeof(float));
  s.wait();
  return p;
}

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
      ConvSpec c{b->conv[j]->weight.to(dtype), b->conv[j]->bias, 1, j == 2, true, false};
      impl_->convs.push_back(c);
    }
  };
  for (const auto& e : net.encoders_) block(e);
  for (std::size_t k = 0; k < net.decoders_.size(); ++k) {
    const auto& u = net.upsample_[k];
    impl_->convs.push_back(
        {subpixel_weights(u->weight).to(dtype), u->bias.repeat({4}), 1, false, false, false});
    block(net.decoders_[k]);
  }
  const auto& f = net.final_conv;
  impl_->convs.push_back({f->weight.to(dtype), f->bias, 0, false, false, true});
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
  for (const auto& p : prims) scratch_bytes = std::max(scratch_bytes, p.scratch);
  auto scratch = torch::empty({static_cast<int64_t>(scratch_bytes) + 1}, torch::kUInt8);
  dnnl::stream s(cpu_engine());
  const auto cl = torch::MemoryFormat::ChannelsLast;
  const auto act_opts = x.options().dtype(impl_->dtype);
  // Runs primitive p from src into dst (torch tensors whose memory matches its descriptors).
  auto run = [&](const Prim& p, const torch::Tensor& src, const torch::Tensor& dst) {
    memory src_m(p.src, cpu_engine(), src.data_ptr());
    memory dst_m(p.dst, cpu_engine(), dst.data_ptr());
    memory scr(p.scratch_md, cpu_engine(), scratch.data_ptr());
    p.conv.execute(s, {{DNNL_ARG_SRC, src_m},
                       {DNNL_ARG_WEIGHTS, p.weights},
                       {DNNL_ARG_BIAS, p.bias},
                       {DNNL_ARG_DST, dst_m},
                       {DNNL_ARG_SCRATCHPAD, scr}});
  };
  auto empty = [&](int64_t c, int64_t h, int64_t w) {
    return torch::empty({N, c, h, w}, act_opts, cl);
  };
  std::size_t i = 0;
  // A residual block: a = relu(conv0(x)); relu(conv2(relu(conv1(a))) + a), written over a.
  auto block = [&](const torch::Tensor& in) {
    const int64_t c = prims[i].dst.dims()[1], h = in.size(2), w = in.size(3);
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
    const auto zd = up.dst.dims();
    auto z = empty(zd[1], zd[2], zd[3]);
    run(up, cur, z);
    // feats[3-k] += the transposed convolution's output, read phase by phase from z.
    const int64_t h = cur.size(2), w = cur.size(3), c = zd[1] / 4;
    auto phases = z.permute({0, 2, 3, 1}).slice(1, 1).slice(2, 1).view({N, h, w, 2, 2, c});
    auto& skip = feats[3 - k];
    skip.permute({0, 2, 3, 1}).view({N, h, 2, w, 2, c}).add_(phases.permute({0, 1, 3, 2, 4, 5}));
    cur = block(skip);
  }
  const Prim& last = prims[i++];
  auto logits = torch::empty({N, last.dst.dims()[1], H, W}, x.options().dtype(torch::kFloat32), cl);
  run(last, cur, logits);
  s.wait();
  return logits.contiguous();
}

}  // namespace spineparse::nn
