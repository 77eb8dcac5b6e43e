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
// the slice count only the centre plane touches the volume.
struct FusedSeparableConv::Impl {
  torch::ScalarType dtype;
  int64_t dilation = 1, stride = 1;
  ConvSpec lower, upper, centre, centre_alone, pointwise;
  std::mutex mu;
  std::map<std::tuple<int, int64_t, int64_t, int64_t>, ConvPrim> prims;  // (which, n, h, w)

  const ConvPrim& prim(int which, const ConvSpec& c, int64_t n, int64_t h, int64_t w) {
    std::lock_guard<std::mutex> lock(mu);
    const auto key = std::make_tuple(which, n, h, w);
    if (auto it = prims.find(key); it != prims.end()) return it->second;
    return prims.emplace(key, onednn::make_conv(c, dtype, n, h, w)).first->second;
  }
};

FusedSeparableConv::FusedSeparableConv(const SeparableConvImpl& s, torch::ScalarType dtype)
    : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.dtype = dtype;
  m.dilation = s.dilation;
  m.stride = s.stride[1];
  const auto& dw = s.depthwise;
  if (!dw->bias.defined() || !s.pointwise->bias.defined())
    throw std::logic_error("FusedSeparableConv: fold the BatchNorms first");
  const int64_t C = dw->weight.size(0);
  auto plane = [&](int64_t kd, bool sum, bool with_bias, bool relu) {
    ConvSpec c;
    c.weight = dw->weight.select(2, kd).contiguous();  // [C, 1, 3, 3]
    c.bias = with_bias ? dw->bias : torch::zeros({C});
    c.stride = m.stride;
    c.pad = c.dilation = m.dilation;
    c.groups = C;
    c.sum = sum;
    c.relu = relu;
    return c;
  };
  m.lower = plane(0, false, false, false);
  m.upper = plane(2, true, false, false);
  m.centre = plane(1, true, true, s.activations);
  m.centre_alone = plane(1, false, true, s.activations);
  m.pointwise.weight = s.pointwise->weight.flatten(1).unsqueeze(2).unsqueeze(3);  // [O, C, 1, 1]
  m.pointwise.bias = s.pointwise->bias;
  m.pointwise.relu = s.activations;
  try {
    for (const auto* c : {&m.lower, &m.centre, &m.pointwise})
      (void)onednn::make_conv(*c, dtype, 1, 8, 8);
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
  const ConvPrim& centre =
      partial > 0 ? m.prim(2, m.centre, D, H, W) : m.prim(3, m.centre_alone, D, H, W);
  const int64_t Ho = centre.out_h, Wo = centre.out_w;
  const ConvPrim* lower = partial > 0 ? &m.prim(0, m.lower, partial, H, W) : nullptr;
  const ConvPrim* upper = partial > 0 ? &m.prim(1, m.upper, partial, H, W) : nullptr;
  const ConvPrim& point = m.prim(4, m.pointwise, N * D, Ho, Wo);
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
