#include "nn/onednn_resunet.hpp"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "nn/int8_rows.hpp"
#include "nn/networks.hpp"
#include "nn/onednn_conv.hpp"

namespace spineparse::nn {
using onednn::ConvPrim;
using onednn::ConvSpec;
using Prim = ConvPrim;

namespace {

// For int8: each convolution's source and destination activation points (FusedResUNet's order;
// -1: the float logits) and, for a block's last, its residual's; each decoder's skip sum.
struct ConvPoints {
  int src = 0, dst = -1, sum = -1;
};
struct SkipPoints {
  int skip = 0, up = 0, sum = 0;
};

}  // namespace

struct FusedResUNet::Impl {
  torch::ScalarType dtype;
  std::vector<ConvSpec> convs;  // enc blocks (3 each), then per decoder: upsample, 3 block convs;
                                // the final 1x1 last
  // int8: each activation point's scale (value = stored integer x scale) and signedness; the
  // input (point 0) is stored per channel at input_scale, its point scale 1.
  std::vector<float> scale, input_scale;
  std::vector<bool> is_signed;
  std::vector<SkipPoints> skips;
  std::mutex mu;
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::vector<Prim>> plans;  // by (N, H, W)

  bool int8() const { return dtype == torch::kChar; }
  Prim make(const ConvSpec& c, int64_t n, int64_t h, int64_t w) const {
    return onednn::make_conv(c, dtype, n, h, w);
  }
  const std::vector<Prim>& plan(int64_t n, int64_t h, int64_t w);
  void quantize(const std::vector<float>& maxima);
  // Decoder k's input: the skip features plus the sub-pixel upsampling z read phase by phase
  // (float: added into `skip` in place; int8: requantized into a new tensor).
  torch::Tensor skip_sum(int k, torch::Tensor& skip, const torch::Tensor& z) const;
};

namespace {

// The points of every convolution in `convs` order, and the decoders' skip sums.
std::vector<ConvPoints> conv_points(std::vector<SkipPoints>& skips) {
  std::vector<ConvPoints> p;
  int next = 1, cur = 0;
  std::vector<int> encoded;
  auto block = [&](int in) {
    const int a = next++, b = next++, out = next++;
    p.push_back({in, a});
    p.push_back({a, b});
    p.push_back({b, out, a});
    return out;
  };
  for (int k = 0; k < 5; ++k) encoded.push_back(cur = block(cur));
  for (int k = 0; k < 4; ++k) {
    const int up = next++, sum = next++;
    p.push_back({cur, up});
    skips.push_back({encoded[static_cast<std::size_t>(3 - k)], up, sum});
    cur = block(sum);
  }
  p.push_back({cur, -1});
  return p;
}

// A float convolution as int8: weights per output channel (scale max|w| / 127; reading the input,
// the input channels' scales folded in first), the bias in the accumulator's units, the output
// scales from the source's to the destination's.
ConvSpec quantized(const ConvSpec& f, const ConvPoints& p, const std::vector<float>& scale,
                   const std::vector<bool>& is_signed, const std::vector<float>& input_scale) {
  using dt = dnnl::memory::data_type;
  ConvSpec q = f;
  auto w = f.weight.to(torch::kFloat);
  if (p.src == 0) w = w * torch::tensor(input_scale).view({1, -1, 1, 1});
  const auto sw = w.abs().amax({1, 2, 3}).clamp_min(1e-12) / 127.0;
  const float s_src = scale[static_cast<std::size_t>(p.src)];
  q.weight = (w / sw.view({-1, 1, 1, 1})).round().clamp(-127, 127).to(torch::kChar);
  q.bias = f.bias.to(torch::kFloat) / (sw * s_src);
  onednn::Int8Conv i;
  i.src = is_signed[static_cast<std::size_t>(p.src)] ? dt::s8 : dt::u8;
  const float s_dst = p.dst < 0 ? 1.f : scale[static_cast<std::size_t>(p.dst)];
  if (p.dst >= 0) i.dst = is_signed[static_cast<std::size_t>(p.dst)] ? dt::s8 : dt::u8;
  const auto out = (sw * (s_src / s_dst)).contiguous();
  i.out_scales.assign(out.data_ptr<float>(), out.data_ptr<float>() + out.numel());
  if (p.sum >= 0) i.sum_scale = scale[static_cast<std::size_t>(p.sum)] / s_dst;
  q.int8 = std::move(i);
  return q;
}

// x (float32, channels-last) / its channel's scale, rounded and saturated to int8.
torch::Tensor quantize_input(const torch::Tensor& x, const std::vector<float>& scale) {
  auto q = torch::empty(x.sizes(), x.options().dtype(torch::kChar), x.suggest_memory_format());
  const float* src = x.data_ptr<float>();
  auto* dst = q.data_ptr<int8_t>();
  const int64_t C = x.size(1);
  std::vector<float> inv(scale.size());
  for (std::size_t c = 0; c < scale.size(); ++c) inv[c] = 1.f / scale[c];
  at::parallel_for(0, x.numel() / C, 1 << 12, [&](int64_t b, int64_t e) {
    int8_rows::quantize_pixels(src + b * C, inv.data(), dst + b * C, e - b, C);
  });
  return q;
}

// Raises ranges[c] to the largest |value| of the input's channel c (record_maxima's first ones).
void record_input_ranges(const torch::Tensor& x, std::vector<float>& ranges) {
  const auto m = x.abs().amax({0, 2, 3}).to(torch::kFloat).contiguous();
  for (int64_t c = 0; c < m.numel() && c < FusedResUNet::kInputChannels; ++c) {
    auto& r = ranges[static_cast<std::size_t>(c)];
    r = std::max(r, m.data_ptr<float>()[c]);
  }
}

// 2x2 max pooling, stride 2, of uint8 channels-last activations (the scale is unchanged).
torch::Tensor max_pool_u8(const torch::Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  auto y = torch::empty({N, C, H / 2, W / 2}, x.options(), torch::MemoryFormat::ChannelsLast);
  const auto* s = x.data_ptr<uint8_t>();
  auto* d = y.data_ptr<uint8_t>();
  at::parallel_for(0, N * (H / 2), 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t n = r / (H / 2), i = r % (H / 2);
      const uint8_t* row0 = s + ((n * H + 2 * i) * W) * C;
      int8_rows::max_pool_row(row0, row0 + W * C, d + r * (W / 2) * C, W / 2, C);
    }
  });
  return y;
}

// The decoder's input in int8: skip (uint8 [N, C, 2h, 2w]) plus the upsampling read phase by
// phase from z (int8 [N, 4C, h + 1, w + 1], phase (py, px) in channels (2 py + px) C ...),
// requantized to `sum_scale`.
torch::Tensor skip_sum_int8(const torch::Tensor& skip, const torch::Tensor& z, float skip_scale,
                            float up_scale, float sum_scale) {
  const int64_t N = skip.size(0), C = skip.size(1), H = skip.size(2), W = skip.size(3);
  const int64_t zw = z.size(3), zc = z.size(1);
  auto out = torch::empty(skip.sizes(), skip.options().dtype(torch::kChar),
                          torch::MemoryFormat::ChannelsLast);
  const auto* s = skip.data_ptr<uint8_t>();
  const auto* u = z.data_ptr<int8_t>();
  auto* d = out.data_ptr<int8_t>();
  const float a = skip_scale / sum_scale, b = up_scale / sum_scale;
  at::parallel_for(0, N * H, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = r / H, y = r % H, py = y % 2;
      const int8_t* zrow = u + ((n * z.size(2) + y / 2 + 1) * zw + 1) * zc + 2 * py * C;
      int8_rows::skip_sum_row(s + r * W * C, zrow, d + r * W * C, W, C, zc, a, b);
    }
  });
  return out;
}

}  // namespace

void FusedResUNet::Impl::quantize(const std::vector<float>& maxima) {
  if (maxima.size() != kActivationPoints)
    throw std::invalid_argument("int8 ResUNet2D: " + std::to_string(maxima.size()) +
                                " activation ranges, expected " +
                                std::to_string(kActivationPoints));
  for (std::size_t i = 0; i < maxima.size(); ++i)
    if (!(maxima[i] > 0) || !std::isfinite(maxima[i]))
      throw std::invalid_argument("int8 ResUNet2D: activation range " + std::to_string(i) +
                                  " is not a positive number");
  if (convs.front().weight.size(1) != kInputChannels)
    throw std::invalid_argument("int8 ResUNet2D: the network reads " +
                                std::to_string(convs.front().weight.size(1)) + " channels, not " +
                                std::to_string(kInputChannels));
  const auto points = conv_points(skips);
  const std::size_t n_points = kActivationPoints - kInputChannels + 1;
  is_signed.assign(n_points, false);
  is_signed[0] = true;
  for (const auto& s : skips) {
    is_signed[static_cast<std::size_t>(s.up)] = true;
    is_signed[static_cast<std::size_t>(s.sum)] = true;
  }
  for (int c = 0; c < kInputChannels; ++c) input_scale.push_back(maxima[c] / 127.f);
  scale.push_back(1.f);
  for (std::size_t p = 1; p < n_points; ++p)
    scale.push_back(maxima[kInputChannels - 1 + p] / (is_signed[p] ? 127.f : 255.f));
  for (std::size_t c = 0; c < convs.size(); ++c)
    convs[c] = quantized(convs[c], points[c], scale, is_signed, input_scale);
}

torch::Tensor FusedResUNet::Impl::skip_sum(int k, torch::Tensor& skip,
                                           const torch::Tensor& z) const {
  if (int8()) {
    const auto& p = skips[static_cast<std::size_t>(k)];
    auto at = [&](int point) { return scale[static_cast<std::size_t>(point)]; };
    return skip_sum_int8(skip, z, at(p.skip), at(p.up), at(p.sum));
  }
  const int64_t N = z.size(0), h = z.size(2) - 1, w = z.size(3) - 1, c = z.size(1) / 4;
  auto phases = z.permute({0, 2, 3, 1}).slice(1, 1).slice(2, 1).view({N, h, w, 2, 2, c});
  skip.permute({0, 2, 3, 1}).view({N, h, 2, w, 2, c}).add_(phases.permute({0, 1, 3, 2, 4, 5}));
  return skip;
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

FusedResUNet::FusedResUNet(const ResUNet2dImpl& net, torch::ScalarType dtype,
                           const std::vector<float>& maxima)
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
  if (impl_->int8()) impl_->quantize(maxima);
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

torch::Tensor FusedResUNet::forward(const torch::Tensor& x) const { return run(x, nullptr); }

torch::Tensor FusedResUNet::record_maxima(const torch::Tensor& x,
                                          std::vector<float>& maxima) const {
  if (impl_->dtype != torch::kFloat)
    throw std::logic_error("FusedResUNet::record_maxima needs the float32 network");
  maxima.resize(kActivationPoints, 0.f);
  return run(x, &maxima);
}

torch::Tensor FusedResUNet::run(const torch::Tensor& x, std::vector<float>* maxima) const {
  const int64_t N = x.size(0), H = x.size(2), W = x.size(3);
  if (H % 16 || W % 16) throw std::runtime_error("FusedResUNet: H and W must be divisible by 16");
  const auto& prims = impl_->plan(N, H, W);
  const bool q = impl_->int8();
  std::size_t scratch_bytes = 0;
  for (const auto& p : prims) scratch_bytes = std::max(scratch_bytes, p.scratch.get_size());
  auto scratch = torch::empty({static_cast<int64_t>(scratch_bytes) + 1}, torch::kUInt8);
  dnnl::stream s(onednn::engine());
  const auto cl = torch::MemoryFormat::ChannelsLast;
  auto run = [&](const Prim& p, const torch::Tensor& src, const torch::Tensor& dst) {
    onednn::run_conv(p, s, src.data_ptr(), dst.data_ptr(), scratch.data_ptr());
  };
  // An activation [N, c, h, w]: int8 where it can be negative, uint8 after a ReLU.
  auto empty = [&](int64_t c, int64_t h, int64_t w, bool is_signed = false) {
    const auto dtype = !q ? impl_->dtype : is_signed ? torch::kChar : torch::kByte;
    return torch::empty({N, c, h, w}, x.options().dtype(dtype), cl);
  };
  std::size_t point = kInputChannels;  // the next range after the input's (record_maxima's order)
  auto record = [&](const torch::Tensor& t) {
    if (maxima) (*maxima)[point] = std::max((*maxima)[point], t.abs().max().item<float>());
    ++point;
  };
  if (maxima) record_input_ranges(x, *maxima);
  std::size_t i = 0;
  // A residual block: a = relu(conv0(x)); relu(conv2(relu(conv1(a))) + a), written over a.
  auto block = [&](const torch::Tensor& in) {
    const int64_t c = prims[i].out_c, h = in.size(2), w = in.size(3);
    auto a = empty(c, h, w), b = empty(c, h, w);
    run(prims[i++], in, a);
    record(a);
    run(prims[i++], a, b);
    record(b);
    run(prims[i++], b, a);
    record(a);
    return a;
  };
  std::vector<torch::Tensor> feats;
  torch::Tensor cur = q ? quantize_input(x, impl_->input_scale) : x;
  for (int k = 0; k < 5; ++k) {
    if (k > 0) cur = q ? max_pool_u8(cur) : torch::max_pool2d(cur, {2, 2}, {2, 2}).contiguous(cl);
    cur = block(cur);
    feats.push_back(cur);
  }
  for (int k = 0; k < 4; ++k) {
    const Prim& up = prims[i++];
    auto z = empty(up.out_c, up.out_h, up.out_w, /*is_signed=*/true);
    run(up, cur, z);
    record(z);
    const auto skip = impl_->skip_sum(k, feats[static_cast<std::size_t>(3 - k)], z);
    record(skip);
    cur = block(skip);
  }
  const Prim& last = prims[i++];
  auto logits = torch::empty({N, last.out_c, H, W}, x.options().dtype(torch::kFloat32), cl);
  run(last, cur, logits);
  s.wait();
  return logits;
}

}  // namespace spineparse::nn
