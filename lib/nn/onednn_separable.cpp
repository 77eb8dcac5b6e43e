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

// With kernel 3 the planes run in this order: the lower plane (writes its slices), the upper
// plane (sums into its slices, after the slices only it covers are zeroed), then the centre plane
// over every slice (sums, adds the bias and, when asked, the ReLU). With a dilation of at least the
// slice count only the centre plane touches the volume. Likewise in the plane: kernel rows
// (columns) a dilation puts wholly outside the image only ever meet padding, so they are left out
// (ASPP's dilations of 12 and 18 on the 8 x 16 top of the encoder leave the centre tap alone).
struct FusedConv3d::Impl {
  torch::ScalarType dtype;
  int64_t k = 1, dilation = 1, stride = 1, groups = 1;
  torch::Tensor weight, bias;  // [O, I/groups, k, k, k], [O] float
  std::mutex mu;
  // by (plane, sum, relu, add_after, n, h, w)
  using Key = std::tuple<int64_t, bool, bool, bool, int64_t, int64_t, int64_t>;
  std::map<Key, ConvPrim> prims;

  ConvSpec plane(int64_t kd, bool sum, bool relu, bool add, int64_t h, int64_t w) const {
    ConvSpec c;
    auto kw = weight.select(2, kd);  // [O, I/groups, k, k]
    if (k > 1 && dilation >= h) kw = kw.narrow(2, 1, 1);
    if (k > 1 && dilation >= w) kw = kw.narrow(3, 1, 1);
    c.weight = kw.contiguous();
    c.bias = kd == k / 2 ? bias : torch::zeros_like(bias);
    c.stride = stride;
    c.pad = c.dilation = dilation;
    c.groups = groups;
    c.sum = sum;
    c.relu = relu;
    c.add_after = add;
    return c;
  }

  const ConvPrim& prim(int64_t kd, bool sum, bool relu, bool add, int64_t n, int64_t h, int64_t w) {
    std::lock_guard<std::mutex> lock(mu);
    const Key key{kd, sum, relu, add, n, h, w};
    if (auto it = prims.find(key); it != prims.end()) return it->second;
    return prims.emplace(key, onednn::make_conv(plane(kd, sum, relu, add, h, w), dtype, n, h, w))
        .first->second;
  }

  // y = [relu](conv(x) + bias) [+ y when `add`], x and y channels-last-3d in dtype.
  void run(const torch::Tensor& x, torch::Tensor& y, bool relu, bool add) {
    const int64_t N = x.size(0), D = x.size(2), H = x.size(3), W = x.size(4);
    const int64_t partial = D - dilation;  // slices the lower and upper planes reach
    const bool alone = k == 1 || partial <= 0;
    const ConvPrim& centre =
        alone ? prim(k / 2, false, relu, add, N * D, H, W) : prim(1, true, relu, false, D, H, W);
    const ConvPrim* lower = alone ? nullptr : &prim(0, false, false, false, partial, H, W);
    const ConvPrim* upper = alone ? nullptr : &prim(2, true, false, false, partial, H, W);
    std::size_t scratch_bytes = centre.scratch.get_size();
    if (lower)
      scratch_bytes =
          std::max({scratch_bytes, lower->scratch.get_size(), upper->scratch.get_size()});
    auto scratch = torch::empty({static_cast<int64_t>(scratch_bytes) + 1}, torch::kUInt8);
    const std::size_t es = x.element_size();
    const int64_t in_slice = H * W * x.size(1) * es,
                  out_slice = y.size(3) * y.size(4) * y.size(1) * es;
    auto* in = static_cast<const char*>(x.data_ptr());
    auto* out = static_cast<char*>(y.data_ptr());
    dnnl::stream s(onednn::engine());
    if (alone) {
      onednn::run_conv(centre, s, in, out, scratch.data_ptr());
      s.wait();
      return;
    }
    for (int64_t n = 0; n < N; ++n) {
      const char* xn = in + n * D * in_slice;
      char* yn = out + n * D * out_slice;
      // Output slice d reads input slice d - dil through the lower plane, d + dil the upper.
      onednn::run_conv(*lower, s, xn, yn + dilation * out_slice, scratch.data_ptr());
      y[n].narrow(1, 0, dilation).zero_();  // slices only the upper plane reaches
      s.wait();
      onednn::run_conv(*upper, s, xn + dilation * in_slice, yn, scratch.data_ptr());
      onednn::run_conv(centre, s, xn, yn, scratch.data_ptr());
    }
    s.wait();
  }

  // The output's sizes for an input of `in` sizes: kernel 1, or 3 with padding = dilation, give
  // (n - 1) / stride + 1 outputs along a plane axis.
  std::vector<int64_t> output_sizes(at::IntArrayRef in) const {
    if (in.size() != 5) throw std::invalid_argument("FusedConv3d: input [N, C, D, H, W]");
    return {in[0], weight.size(0), in[2], (in[3] - 1) / stride + 1, (in[4] - 1) / stride + 1};
  }
  torch::Tensor output_for(at::IntArrayRef in, const torch::TensorOptions& options) const {
    return torch::empty(output_sizes(in), options.dtype(dtype),
                        torch::MemoryFormat::ChannelsLast3d);
  }
};

FusedConv3d::FusedConv3d(const torch::Tensor& weight, const torch::Tensor& bias, int64_t dilation,
                         int64_t stride, int64_t groups, torch::ScalarType dtype)
    : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.dtype = dtype;
  m.k = weight.size(2);
  if (weight.dim() != 5 || (m.k != 1 && m.k != 3) || weight.size(3) != m.k || weight.size(4) != m.k)
    throw std::logic_error("FusedConv3d: kernel 1x1x1 or 3x3x3");
  m.dilation = m.k == 1 ? 1 : dilation;
  m.stride = stride;
  m.groups = groups;
  m.weight = weight.detach();
  m.bias = bias.defined() ? bias.detach().to(torch::kFloat32)
                          : torch::zeros({weight.size(0)}, torch::kFloat32);
  try {
    (void)onednn::make_conv(m.plane(m.k / 2, m.k > 1, true, false, 8, 8), dtype, 1, 8, 8);
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("oneDNN has no ") + c10::toString(dtype) +
                             " convolution of this kind for this CPU: " + e.what());
  }
}

FusedConv3d::~FusedConv3d() = default;

std::vector<int64_t> FusedConv3d::output_sizes(at::IntArrayRef input_sizes) const {
  return impl_->output_sizes(input_sizes);
}

torch::Tensor FusedConv3d::output_for(at::IntArrayRef input_sizes,
                                      const torch::TensorOptions& options) const {
  return impl_->output_for(input_sizes, options);
}

torch::Tensor FusedConv3d::forward(const torch::Tensor& input, bool relu) const {
  auto y = output_for(input.sizes(), input.options());
  forward_into(input, y, relu);
  return y;
}

void FusedConv3d::forward_into(const torch::Tensor& input, torch::Tensor& dst, bool relu,
                               bool add) const {
  if (add && impl_->k != 1) throw std::logic_error("FusedConv3d: adds with kernel 1x1x1 only");
  const auto x = input.to(impl_->dtype).contiguous(torch::MemoryFormat::ChannelsLast3d);
  if (!dst.is_contiguous(torch::MemoryFormat::ChannelsLast3d) ||
      dst.scalar_type() != impl_->dtype || dst.sizes() != impl_->output_sizes(x.sizes()))
    throw std::logic_error("FusedConv3d: destination of another shape, type or layout");
  impl_->run(x, dst, relu, add);
}

FusedSeparableConv::FusedSeparableConv(const SeparableConvImpl& s, torch::ScalarType dtype)
    : activations_(s.activations) {
  const auto& dw = s.depthwise;
  if (!dw->bias.defined() || !s.pointwise->bias.defined())
    throw std::logic_error("FusedSeparableConv: fold the BatchNorms first");
  depthwise_ = std::make_unique<const FusedConv3d>(dw->weight, dw->bias, s.dilation, s.stride[1],
                                                   dw->weight.size(0), dtype);
  pointwise_ =
      std::make_unique<const FusedConv3d>(s.pointwise->weight, s.pointwise->bias, 1, 1, 1, dtype);
}

FusedSeparableConv::~FusedSeparableConv() = default;

// The result is allocated before the depthwise convolution's: that one, freed first, then lies at
// the top of the heap, where the next layer's allocations take it back, so a forward pass faults
// in fewer fresh pages.
torch::Tensor FusedSeparableConv::forward(const torch::Tensor& x) const {
  auto y = pointwise_->output_for(depthwise_->output_sizes(x.sizes()), x.options());
  pointwise_->forward_into(depthwise_->forward(x, activations_), y, activations_);
  return y;
}

}  // namespace spineparse::nn
