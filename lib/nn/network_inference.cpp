// Preparing the networks for inference: BatchNorm folded into the convolutions, the GCSN's
// separable convolutions split into planes (or fused through oneDNN), the ResUNet2D's weights in
// oneDNN's layout, channels-last memory.
#include <torch/torch.h>
#include <torch/version.h>

#include "nn/gcsn_layers.hpp"
#include "nn/networks.hpp"
#include "nn/precision.hpp"

#ifdef SPINEPARSE_WITH_ONEDNN
#include "nn/onednn_resunet.hpp"
#include "nn/onednn_separable.hpp"
#endif

namespace spineparse::nn {

namespace {

// Folds an eval-mode BatchNorm into the convolution before it (y = conv(x) * s + t with
// s = gamma / sqrt(var + eps), t = beta - mean * s), computed in float64 and stored in the
// convolution's dtype and device. The convolution gets a bias tensor (not a registered parameter:
// folded networks are for inference only, and stay where they are); the BatchNorm becomes empty.
template <class Conv, class BN>
void fold(Conv& conv, BN& bn) {
  if (bn.is_empty()) return;
  torch::NoGradGuard ng;
  const auto opts = conv->weight.options();
  auto scale = bn->weight.to(torch::kFloat64) /
               torch::sqrt(bn->running_var.to(torch::kFloat64) + bn->options.eps());
  std::vector<int64_t> shape(conv->weight.dim(), 1);
  shape[0] = -1;
  auto w = conv->weight.to(torch::kFloat64) * scale.view(shape);
  auto b = conv->bias.defined() ? conv->bias.to(torch::kFloat64) : torch::zeros_like(scale);
  b = (b - bn->running_mean.to(torch::kFloat64)) * scale + bn->bias.to(torch::kFloat64);
  conv->weight.set_data(w.to(opts.dtype()));
  conv->bias = b.to(opts.dtype()).detach();
  bn = BN(nullptr);
}

std::vector<int64_t> vec(const torch::ExpandingArray<2>& a) { return {a->begin(), a->end()}; }
// A convolution's explicit padding (empty where it is 'valid' or 'same').
template <std::size_t D, class Options>
std::vector<int64_t> explicit_padding(const Options& o) {
  const auto& p = o.padding();
#if TORCH_VERSION_MAJOR >= 2  // the options' variants are std::variant from 2.x on
  const auto* arr = std::get_if<torch::ExpandingArray<D>>(&p);
#else
  const auto* arr = c10::get_if<torch::ExpandingArray<D>>(&p);
#endif
  return arr ? std::vector<int64_t>((*arr)->begin(), (*arr)->end()) : std::vector<int64_t>{};
}
std::vector<int64_t> padding_of(const torch::nn::Conv2dImpl& conv) {
  auto pad = explicit_padding<2>(conv.options);
  if (pad.empty()) throw std::logic_error("ResUNet2D convolution without explicit padding");
  return pad;
}

}  // namespace

bool use_onednn_layout(ResUNet2d& net) {
  const auto& w0 = net->final_conv->weight;
  const auto dtype = w0.scalar_type();
  if (!at::hasMKLDNN() || !w0.is_cpu() || (dtype != torch::kFloat32 && dtype != torch::kBFloat16))
    return false;
  // oneDNN's bfloat16 convolutions need AVX-512 (natively or emulated on AVX512_CORE); below
  // that LibTorch's own kernels run bfloat16.
  if (dtype == torch::kBFloat16 && !cpu_features().avx512f) return false;
  torch::NoGradGuard ng;
  using OneDnnConv = ResUNet2dImpl::OneDnnConv;
  auto reorder = [](const torch::Tensor& weight, OneDnnConv p) {
    p.weight = weight.contiguous(torch::MemoryFormat::ChannelsLast);
    return p;
  };
  std::map<const torch::nn::Conv2dImpl*, OneDnnConv> w;
  auto pack = [&](const torch::nn::Conv2d& c) {
    if (!c->bias.defined()) throw std::logic_error("use_onednn_layout: fold the BatchNorms first");
    const auto& o = c->options;
    w[c.get()] =
        reorder(c->weight, {{}, padding_of(*c), vec(o.stride()), vec(o.dilation()), o.groups()});
  };
  for (auto* blocks : {&net->encoders_, &net->decoders_}) {
    for (auto& b : *blocks) {
      for (auto& c : b->conv) pack(c);
    }
  }
  pack(net->final_conv);
  std::vector<OneDnnConv> up;
  std::vector<torch::Tensor> up_bias;
  for (auto& u : net->upsample_) {
    up.push_back(reorder(subpixel_weights(u->weight), {{}, {1, 1}, {1, 1}, {1, 1}, 1}));
    up_bias.push_back(u->bias.repeat({4}).contiguous());
  }
  net->onednn_weights_ = std::move(w);
  net->onednn_upsample_ = std::move(up);
  net->onednn_upsample_bias_ = std::move(up_bias);
#ifdef SPINEPARSE_WITH_ONEDNN
  try {
    net->fused_ = std::make_shared<const FusedResUNet>(*net, dtype);
  } catch (const std::runtime_error&) {
    net->fused_.reset();  // LibTorch's own operators, which emulate what the CPU lacks
  }
#endif
  return true;
}

void fold_batchnorm(Gcsn& net) {
  auto& L = *net->layers;
  auto& xf = *L.xf;
  fold(xf.conv1, xf.bn1);
  fold(xf.conv2, xf.bn2);
  auto sep = [](SeparableConv& s) {
    fold(s->depthwise, s->depthwise_bn);
    fold(s->pointwise, s->pointwise_bn);
  };
  for (auto* b : {&xf.block1, &xf.block2, &xf.block3, &xf.block20}) {
    fold((*b)->skip, (*b)->skipbn);
    for (auto& m : (*b)->main) sep(m);
  }
  for (auto* s : {&xf.conv3, &xf.conv4, &xf.conv5, &L.aspp2, &L.aspp3, &L.aspp4, &L.dec1a, &L.dec1b,
                  &L.dec2a, &L.dec2b})
    sep(*s);
  fold(L.aspp1_conv, L.aspp1_bn);
  fold(L.gap_conv, L.gap_bn);
  fold(L.concat_conv, L.concat_bn);
  fold(L.proj4_conv, L.proj4_bn);
  fold(L.proj2_conv, L.proj2_bn);
  if (net->with_graph) fold(L.g2f_conv, L.g2f_bn);
}

void fold_batchnorm(ResUNet2d& net) {
  for (auto* blocks : {&net->encoders_, &net->decoders_}) {
    for (auto& b : *blocks) {
      for (int i = 0; i < 3; ++i) fold(b->conv[i], b->bn[i]);
    }
  }
}

namespace {
std::vector<SeparableConv*> separable_convolutions(const Gcsn& net) {
  auto& L = *net->layers;
  auto& xf = *L.xf;
  std::vector<SeparableConv*> all = {&xf.conv3, &xf.conv4, &xf.conv5, &L.aspp2, &L.aspp3,
                                     &L.aspp4,  &L.dec1a,  &L.dec1b,  &L.dec2a, &L.dec2b};
  for (auto* b : {&xf.block1, &xf.block2, &xf.block3, &xf.block20}) {
    for (auto& m : (*b)->main) all.push_back(&m);
  }
  return all;
}
}  // namespace

int fused_separable_convolutions(const Gcsn& net) {
  int n = 0;
  for (auto* s : separable_convolutions(net)) n += (*s)->split_depthwise && (*s)->fused;
  return n;
}

namespace {
// Whether oneDNN's own API has kernels for CPU weights like w here.
bool onednn_kernels_for(const torch::Tensor& w) {
  const auto dtype = w.scalar_type();
  return has_fused_onednn() && w.is_cpu() &&
         (dtype == torch::kFloat32 || (dtype == torch::kBFloat16 && cpu_features().avx512f));
}

#ifdef SPINEPARSE_WITH_ONEDNN
// A folded convolution (stride 1 along the slices, equal in the plane) as a fused oneDNN
// convolution, or null where it cannot be one (LibTorch's operators run it then).
std::shared_ptr<const FusedConv3d> fused_conv(const torch::nn::Conv3d& conv, bool folded) {
  const auto& o = conv->options;
  const auto& st = *o.stride();
  const auto& dil = *o.dilation();
  const auto pad = explicit_padding<3>(o);
  const auto& ks = *o.kernel_size();
  const int64_t k = ks[0];
  const bool plain = (k == 1 || k == 3) && ks[1] == k && ks[2] == k && st[0] == 1 &&
                     st[1] == st[2] && dil[0] == 1 && dil[1] == 1 && dil[2] == 1 &&
                     pad.size() == 3 && pad[0] == k / 2 && pad[1] == k / 2 && pad[2] == k / 2 &&
                     o.groups() == 1;
  if (!folded || !plain || !onednn_kernels_for(conv->weight)) return nullptr;
  try {
    return std::make_shared<const FusedConv3d>(conv->weight, conv->bias, 1, st[1], 1,
                                               conv->weight.scalar_type());
  } catch (const std::runtime_error&) {
    return nullptr;
  }
}

// X W for the voxels' features X [N, V, I] and W [I, O] as a 1x1x1 convolution of the features
// (channels-last-3d [N, I, D, H, W]), or null where oneDNN has none.
std::shared_ptr<const FusedConv3d> product_as_conv(const torch::Tensor& w) {
  if (!onednn_kernels_for(w)) return nullptr;
  try {
    const auto weight = w.detach().t().contiguous().view({w.size(1), w.size(0), 1, 1, 1});
    return std::make_shared<const FusedConv3d>(weight, torch::Tensor(), 1, 1, 1, w.scalar_type());
  } catch (const std::runtime_error&) {
    return nullptr;
  }
}

// The GCSN's entry and 1x1x1 convolutions (GcsnLayers::fused, the blocks' fused_skip).
void fuse_plain_convolutions(Gcsn& net) {
  auto& L = *net->layers;
  auto& xf = *L.xf;
  L.fused.clear();
  auto add = [&](torch::nn::Conv3d& conv, bool folded) {
    if (auto f = fused_conv(conv, folded)) L.fused[conv.get()] = f;
  };
  add(xf.conv1, xf.bn1.is_empty());
  add(xf.conv2, xf.bn2.is_empty());
  add(L.aspp1_conv, L.aspp1_bn.is_empty());
  add(L.concat_conv, L.concat_bn.is_empty());
  add(L.proj4_conv, L.proj4_bn.is_empty());
  add(L.proj2_conv, L.proj2_bn.is_empty());
  add(L.semantic, true);
  L.fused_pre_fea = L.fused_graph_weight = nullptr;
  if (net->with_graph) {
    add(L.g2f_conv, L.g2f_bn.is_empty());
    add(L.skip_conv, true);
    L.fused_pre_fea = product_as_conv(L.pre_fea);
    L.fused_graph_weight = product_as_conv(L.graph_weight);
  }
  for (auto* b : {&xf.block1, &xf.block2, &xf.block3, &xf.block20}) {
    auto& block = **b;
    const bool main_fused = block.main.back()->fused != nullptr;
    block.fused_skip = main_fused ? fused_conv(block.skip, block.skipbn.is_empty()) : nullptr;
  }
}
#endif
}  // namespace

int fused_plain_convolutions(const Gcsn& net) {
  const auto& xf = *net->layers->xf;
  int n = static_cast<int>(net->layers->fused.size());
  for (const auto* b : {&xf.block1, &xf.block2, &xf.block3, &xf.block20})
    n += (*b)->fused_skip != nullptr;
  return n;
}

int split_depthwise_convolutions(Gcsn& net) {
  int n = 0;
  for (auto* s : separable_convolutions(net)) {
    auto& m = **s;
    const bool planar = m.stride[0] == 1 && m.stride[1] == m.stride[2];  // in-plane stride only
    m.split_depthwise = planar;
    n += planar;
#ifdef SPINEPARSE_WITH_ONEDNN
    m.fused.reset();
    if (planar && onednn_kernels_for(m.pointwise->weight) && m.depthwise->bias.defined()) {
      try {
        m.fused = std::make_shared<const FusedSeparableConv>(m, m.pointwise->weight.scalar_type());
      } catch (const std::runtime_error&) {
        // LibTorch's operators (depthwise_by_planes) run it
      }
    }
#endif
  }
#ifdef SPINEPARSE_WITH_ONEDNN
  fuse_plain_convolutions(net);
#endif
  return n;
}

void optimize_for_inference(Gcsn& net, bool cuda, Depthwise depthwise) {
  fold_batchnorm(net);
  if (uses_channels_last(cuda)) to_channels_last(*net);
  const bool planes = depthwise == Depthwise::kAuto ? !cuda : depthwise == Depthwise::kPlanes;
  if (planes) split_depthwise_convolutions(net);
}

void optimize_for_inference(ResUNet2d& net, bool cuda, Depthwise) {
  fold_batchnorm(net);
  if (uses_channels_last(cuda)) to_channels_last(*net);
  if (!cuda) use_onednn_layout(net);
}

void to_channels_last(torch::nn::Module& net) {
  torch::NoGradGuard ng;
  for (auto& p : net.parameters(true)) {
    if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
    if (p.dim() == 5) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast3d));
  }
}

bool has_fused_onednn() {
#ifdef SPINEPARSE_WITH_ONEDNN
  return true;
#else
  return false;
#endif
}

#ifdef SPINEPARSE_WITH_ONEDNN
int int8_activation_points() { return FusedResUNet::kActivationPoints; }

torch::Tensor record_activation_ranges(const ResUNet2d& net, const torch::Tensor& image,
                                       const torch::Tensor& unary, std::vector<float>& ranges) {
  if (!net->fused_ || net->final_conv->weight.scalar_type() != torch::kFloat32)
    throw std::runtime_error(
        "int8 calibration needs the fused float32 ResUNet2D "
        "(use_onednn_layout on a float32 network)");
  return net->fused_->record_maxima(net->joined_input(image, unary, torch::kFloat32), ranges);
}

void use_int8(ResUNet2d& net, const std::vector<float>& ranges) {
  if (!net->fused_ || net->final_conv->weight.scalar_type() != torch::kFloat32)
    throw std::runtime_error("int8 needs the fused float32 ResUNet2D first (use_onednn_layout)");
  net->fused_ = std::make_shared<const FusedResUNet>(*net, torch::kChar, ranges);
}
#else
int int8_activation_points() { return 0; }
torch::Tensor record_activation_ranges(const ResUNet2d&, const torch::Tensor&, const torch::Tensor&,
                                       std::vector<float>&) {
  throw std::runtime_error("int8 needs oneDNN's own API (libdnnl-dev) at build time");
}
void use_int8(ResUNet2d&, const std::vector<float>&) {
  throw std::runtime_error("int8 needs oneDNN's own API (libdnnl-dev) at build time");
}
#endif

}  // namespace spineparse::nn
