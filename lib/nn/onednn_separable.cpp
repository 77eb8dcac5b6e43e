#include "nn/onednn_separable.hpp"

#include <torch/torch.h>

#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>

#include "nn/networks.hpp"
#include "nn/onednn_conv.hpp"

namespace spineparse::nn {

using onednn::ConvPrim;
using onednn::ConvSpec;

// The depthwise planes run in this order: the lower plane (writes its slices), the upper plane
// (sums into its slices, after the slices only it covers are zeroed), then the centre plane over
// every slice (sums, adds the bias and, with activations, the ReLU). With a dilation of at least
// the slice count only the centre plane touches the volume. Likewise in the plane: kernel rows
// (columns) a dilation puts wholly outside the image only ever meet padding, so they are left out
// (ASPP's dilations of 12 and 18 on the 8 x 16 top of the encoder leave the centre tap alone).
struct FusedSeparableConv::Impl {
  torch::ScalarType dtype;
  int64_t dilation = 1, stride = 1;
  bool activations = false;
  torch::Tensor depthwise, bias;  // [C, 1, 3, 3, 3], [C]
  ConvSpec pointwise;
  std::mutex mu;
  // by (plane 0-2, or 3 for the pointwise; alone; n, h, w)
  std::map<std::tuple<int, bool, int64_t, int64_t, int64_t>, ConvPrim> prims;

  // Depthwise plane kd over slices of h x w; `alone`: no other plane sums with the centre one.
  ConvSpec plane(int64_t kd, bool alone, int64_t h, int64_t w) const {
    ConvSpec c;
    auto k = depthwise.select(2, kd);  // [C, 1, 3, 3]
    if (dilation >= h) k = k.narrow(2, 1, 1);
    if (dilation >= w) k = k.narrow(3, 1, 1);
    c.weight = k.contiguous();
    c.bias = kd == 1 ? bias : torch::zeros_like(bias);
    c.stride = stride;
    c.pad = c.dilation = dilation;
    c.groups = depthwise.size(0);
    c.sum = kd == 2 || (kd == 1 && !alone);
    c.relu = kd == 1 && activations;
    return c;
  }

  const ConvPrim& prim(int which, bool alone, int64_t n, int64_t h, int64_t w) {
    std::lock_guard<std::mutex> lock(mu);
    const auto key = std::make_tuple(which, alone, n, h, w);
    if (auto it = prims.find(key); it != prims.end()) return it->second;
    const ConvSpec c = which == 3 ? pointwise : plane(which, alone, h, w);
    return prims.emplace(key, onednn::make_conv(c, dtype, n, h, w)).first->second;
  }
};

FusedSeparableConv::FusedSeparableConv(const SeparableConvImpl& s, torch::ScalarType dtype)
    : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.dtype = dtype;
  m.dilation = s.dilation;
  m.stride = s.stride[1];
  m.activations = s.activations;
  const auto& dw = s.depthwise;
  if (!dw->bias.defined() || !s.pointwise->bias.defined())
    throw std::logic_error("FusedSeparableConv: fold the BatchNorms first");
  m.depthwise = dw->weight;
  m.bias = dw->bias;
  m.pointwise.weight = s.pointwise->weight.flatten(1).unsqueeze(2).unsqueeze(3);  // [O, C, 1, 1]
  m.pointwise.bias = s.pointwise->bias;
  m.pointwise.relu = s.activations;
  try {
    for (int which : {0, 1, 3}) {
      const ConvSpec c = which == 3 ? m.pointwise : m.plane(which, false, 8, 8);
      (void)onednn::make_conv(c, dtype, 1, 8, 8);
    }
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("oneDNN has no ") + c10::toString(dtype) +
                             " depthwise convolution for this CPU: " + e.what());
  }
}

FusedSeparableConv::~FusedSeparableConv() = default;

torch::Tensor FusedSeparableConv::forward(const torch::Tensor& input) const {
  auto& m = *impl_;
  const auto x = input.to(m.dtype).contiguous(torch::MemoryFormat::ChannelsLast3d);
  const int64_t N = x.size(0), C = x.size(1), D = x.size(2), H = x.size(3), W = x.size(4);
  const int64_t dil = m.dilation, partial = D - dil;  // slices the lower and upper planes reach
  const bool alone = partial <= 0;
  const ConvPrim& centre = m.prim(1, alone, D, H, W);
  const int64_t Ho = centre.out_h, Wo = centre.out_w;
  const ConvPrim* lower = alone ? nullptr : &m.prim(0, false, partial, H, W);
  const ConvPrim* upper = alone ? nullptr : &m.prim(2, false, partial, H, W);
  const ConvPrim& point = m.prim(3, false, N * D, Ho, Wo);
  std::size_t scratch_bytes = std::max(centre.scratch.get_size(), point.scratch.get_size());
  if (lower)
    scratch_bytes = std::max({scratch_bytes, lower->scratch.get_size(), upper->scratch.get_size()});
  auto scratch = torch::empty({static_cast<int64_t>(scratch_bytes) + 1}, torch::kUInt8);
  const auto cl = torch::MemoryFormat::ChannelsLast3d;
  auto acc = torch::empty({N, C, D, Ho, Wo}, x.options(), cl);
  const int64_t in_slice = H * W * C, out_slice = Ho * Wo * C;  // elements per slice
  const std::size_t es = x.element_size();
  auto* in = static_cast<const char*>(x.data_ptr());
  auto* out = static_cast<char*>(acc.data_ptr());
  dnnl::stream s(onednn::engine());
  for (int64_t n = 0; n < N; ++n) {
    const char* xn = in + n * D * in_slice * es;
    char* an = out + n * D * out_slice * es;
    if (lower) {
      // Output slice d reads input slice d - dil through the lower plane, d + dil the upper.
      onednn::run_conv(*lower, s, xn, an + dil * out_slice * es, scratch.data_ptr());
      acc[n].narrow(1, 0, dil).zero_();  // slices only the upper plane reaches
      s.wait();
      onednn::run_conv(*upper, s, xn + dil * in_slice * es, an, scratch.data_ptr());
    }
    onednn::run_conv(centre, s, xn, an, scratch.data_ptr());
  }
  auto y = torch::empty({N, point.out_c, D, Ho, Wo}, x.options(), cl);
  onednn::run_conv(point, s, acc.data_ptr(), y.data_ptr(), scratch.data_ptr());
  s.wait();
  return y;
}

}  // namespace spineparse::nn
