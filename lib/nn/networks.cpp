#include "nn/networks.hpp"

#include "nn/gcsn_layers.hpp"
#include "nn/precision.hpp"

#ifdef SPINEPARSE_WITH_ONEDNN
#include "nn/onednn_resunet.hpp"
#include "nn/onednn_separable.hpp"
#endif

#include <torch/nn/functional.h>
#include <torch/nn/modules/container/any.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>
#include <functional>
#include <sstream>

namespace spineparse::nn {
namespace F = torch::nn::functional;
using torch::nn::BatchNorm3d;
using torch::nn::BatchNorm3dOptions;
using torch::nn::Conv3d;
using torch::nn::Conv3dOptions;

namespace {

// A module that only names its children ("rep", "block2_lastconv", "global_avg_pool", ...).
struct Holder : torch::nn::Module {};

// Trilinear interpolation (align_corners). With the slice count unchanged the weights along the
// slices are 1 and 0, so for channels-last-3d input (the CPU inference path) it runs as bilinear
// interpolation of each slice, twice as fast, result in channels-last-3d memory.
torch::Tensor interp3(const torch::Tensor& x, std::vector<int64_t> size) {
  const int64_t N = x.size(0), C = x.size(1), D = x.size(2);
  if (size[0] == D && x.is_contiguous(c10::MemoryFormat::ChannelsLast3d)) {
    auto slices = x.permute({0, 2, 1, 3, 4}).reshape({N * D, C, x.size(3), x.size(4)});  // a view
    auto y = F::interpolate(slices, F::InterpolateFuncOptions()
                                        .size(std::vector<int64_t>{size[1], size[2]})
                                        .mode(torch::kBilinear)
                                        .align_corners(true));
    return y.contiguous(c10::MemoryFormat::ChannelsLast)
        .reshape({N, D, C, size[1], size[2]})
        .permute({0, 2, 1, 3, 4});
  }
  return F::interpolate(
      x, F::InterpolateFuncOptions().size(size).mode(torch::kTrilinear).align_corners(true));
}

Conv3d conv1x1(int64_t in, int64_t out, bool bias = false) {
  return Conv3d(Conv3dOptions(in, out, 1).bias(bias));
}

// conv3d(x, w, b, stride 1, padding = dilation, dilation, groups = C) for w [C,1,k,k,k], as a sum
// over the k kernel planes of 2-D depthwise convolutions over all slices at once (see
// split_depthwise_convolutions in the header).
torch::Tensor depthwise_by_planes(const torch::Tensor& x, const torch::Tensor& w,
                                  const torch::Tensor& b, int64_t dil, int64_t stride_hw) {
  const int64_t N = x.size(0), C = x.size(1), D = x.size(2), H = x.size(3), W = x.size(4),
                k = w.size(2);
  // [N*D, C, H, W] with channels-last strides: a view when x is in channels-last-3d memory (the
  // output of the split convolution before), one copy otherwise.
  auto xs = x.permute({0, 2, 3, 4, 1}).contiguous().view({N * D, H, W, C}).permute({0, 3, 1, 2});
  torch::Tensor
      acc;  // [N, D, H, W, C]: the centre plane first (full range), then the others shifted
  std::vector<int64_t> order = {k / 2};
  for (int64_t kd = 0; kd < k; ++kd) {
    if (kd != k / 2) order.push_back(kd);
  }
  for (int64_t kd : order) {
    auto yk = torch::conv2d(xs, w.select(2, kd), kd == k / 2 ? b : torch::Tensor(), stride_hw, dil,
                            dil, C);
    auto v = yk.permute({0, 2, 3, 1}).reshape({N, D, yk.size(2), yk.size(3), C});
    if (!acc.defined()) {
      acc = v;
      continue;
    }
    const int64_t shift = (kd - k / 2) * dil;  // output slice d reads input slice d + shift
    const int64_t lo = std::max<int64_t>(0, -shift), hi = std::min<int64_t>(D, D - shift);
    if (hi > lo) acc.narrow(1, lo, hi - lo).add_(v.narrow(1, lo + shift, hi - lo));
  }
  return acc.permute(
      {0, 4, 1, 2, 3});  // channels-last-3d memory: the next pointwise convolution reads it as is
}

// A 1x1x1 convolution (stride 1) of x in channels-last-3d memory as one matrix product over the
// voxels: the input is read and the output written in place, where conv3d would copy both to and
// from its own layout (those transposing copies were 40 % of the GCSN's time on CPU).
// With an in-plane stride the strided voxels are gathered first (a quarter of the input for 2).
torch::Tensor pointwise_channels_last(const torch::nn::Conv3d& conv, torch::Tensor x) {
  const auto& st = conv->options.stride();
  if (st->at(1) != 1 || st->at(2) != 1)
    x = x.slice(3, 0, x.size(3), st->at(1)).slice(4, 0, x.size(4), st->at(2));
  const int64_t N = x.size(0), C = x.size(1), D = x.size(2), H = x.size(3), W = x.size(4);
  auto xm =
      x.permute({0, 2, 3, 4, 1}).reshape({N * D * H * W, C});  // a view when x is channels-last
  auto w = conv->weight.view({conv->weight.size(0), C}).t();
  auto y = conv->bias.defined() ? torch::addmm(conv->bias, xm, w) : torch::mm(xm, w);
  return y.view({N, D, H, W, y.size(1)}).permute({0, 4, 1, 2, 3});
}

}  // namespace

torch::Tensor region_pool(const torch::Tensor& S, const torch::Tensor& T) {
  // Outside autocast, in the wider of the two types and never float16: S / sum_v S is about
  // 1 / V (V ~ 37k voxels), below float16's smallest normal, and the sum over V of S * T can pass
  // its largest value. Under autocast S is float32 (softmax), so this is float32; without it the
  // networks' own type (bfloat16 weights on the CPU stay bfloat16).
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  auto type = c10::promoteTypes(S.scalar_type(), T.scalar_type());
  if (type == torch::kHalf) type = torch::kFloat32;
  const auto s = S.to(type);
  return torch::matmul((s / s.sum(1, true)).transpose(1, 2), T.to(type)).to(T.scalar_type());
}

namespace {

// A BatchNorm that fold_batchnorm() has merged into its convolution is an empty holder: identity.
template <class BN>
torch::Tensor bn_(BN& bn, const torch::Tensor& x) {
  return bn.is_empty() ? x : bn(x);
}

// A 1x1x1 convolution (strided or not, and its BatchNorm), ReLU after it when `relu`: its fused
// oneDNN convolution where it has one (channels-last-3d result); otherwise keeping channels-last-3d
// memory when `cl` (the GCSN with its convolutions split for the CPU, BatchNorm folded) and the
// input has it; otherwise the plain module.
struct NoBatchNorm {
  bool is_empty() const { return true; }
  torch::Tensor operator()(const torch::Tensor& x) const { return x; }
};
template <class BN = NoBatchNorm>
torch::Tensor conv1(bool cl, const FusedConv3d* fused, torch::nn::Conv3d& conv,
                    const torch::Tensor& x, bool relu, BN bn = {}) {
#ifdef SPINEPARSE_WITH_ONEDNN
  if (fused) return fused->forward(x, relu);
#endif
  auto y = cl && bn.is_empty() && x.is_contiguous(c10::MemoryFormat::ChannelsLast3d)
               ? pointwise_channels_last(conv, x)
               : bn_(bn, conv(x));
  return relu ? y.relu_() : y;
}
// Concatenation along the channels; with `cl` the result is in channels-last-3d memory.
torch::Tensor cat_channels(bool cl, std::vector<torch::Tensor> xs) {
  if (!cl) return torch::cat(xs, 1);
  for (auto& t : xs) t = t.permute({0, 2, 3, 4, 1});
  return torch::cat(xs, 4).permute({0, 4, 1, 2, 3});
}

}  // namespace

SeparableConvImpl::SeparableConvImpl(int64_t in, int64_t out, std::vector<int64_t> stride,
                                     int64_t dilation, bool act)
    : activations(act), stride(stride), dilation(dilation) {
  depthwise = register_module("depthwise", Conv3d(Conv3dOptions(in, in, 3)
                                                      .stride(stride)
                                                      .padding(dilation)
                                                      .dilation(dilation)
                                                      .groups(in)
                                                      .bias(false)));
  depthwise_bn = register_module("depthwise_bn", BatchNorm3d(BatchNorm3dOptions(in)));
  pointwise = register_module("pointwise", conv1x1(in, out));
  pointwise_bn = register_module("pointwise_bn", BatchNorm3d(BatchNorm3dOptions(out)));
}

torch::Tensor SeparableConvImpl::forward(const torch::Tensor& x) {
#ifdef SPINEPARSE_WITH_ONEDNN
  if (split_depthwise && fused) return fused->forward(x);
#endif
  auto y = bn_(depthwise_bn,
               split_depthwise
                   ? depthwise_by_planes(x, depthwise->weight, depthwise->bias, dilation, stride[1])
                   : depthwise(x));
  if (activations) y.relu_();  // fresh results: in place
  return conv1(split_depthwise, nullptr, pointwise, y, activations, pointwise_bn);
}

torch::Tensor SeparableConvImpl::forward_relu(const torch::Tensor& x) {
#ifdef SPINEPARSE_WITH_ONEDNN
  if (split_depthwise && fused) return fused->forward(x, /*relu=*/true);
#endif
  return forward(x).relu_();  // a fresh result: in place
}

XceptionBlockImpl::XceptionBlockImpl(int block_id, int64_t in, int64_t out) : id(block_id) {
  const std::vector<int64_t> s1{1, 1, 1}, s2{1, 2, 2};
  skip = register_module("skip",
                         Conv3d(Conv3dOptions(in, out, 1).stride(id == 20 ? s1 : s2).bias(false)));
  skipbn = register_module("skipbn", BatchNorm3d(BatchNorm3dOptions(out)));
  auto rep = register_module("rep", std::make_shared<Holder>());
  auto sep = [](int64_t i, int64_t o, const std::vector<int64_t>& s) {
    return SeparableConv(i, o, s, 1, false);
  };
  if (id == 1) {  // rep.0, rep.2, rep.4 (ReLUs at 1, 3)
    main = {sep(in, out, s1), sep(out, out, s1), sep(out, out, s2)};
    rep->register_module("0", main[0]);
    rep->register_module("2", main[1]);
    rep->register_module("4", main[2]);
  } else if (id == 2) {  // rep.1, rep.3, block2_lastconv.1
    main = {sep(in, out, s1), sep(out, out, s1), sep(out, out, s2)};
    rep->register_module("1", main[0]);
    rep->register_module("3", main[1]);
    auto last = register_module("block2_lastconv", std::make_shared<Holder>());
    last->register_module("1", main[2]);
  } else if (id == 3) {  // rep.1, rep.3, rep.5
    main = {sep(in, out, s1), sep(out, out, s1), sep(out, out, s2)};
  } else {  // block 20: 364 -> 364 -> 512 -> 512, stride 1
    main = {sep(in, in, s1), sep(in, out, s1), sep(out, out, s1)};
  }
  if (id == 3 || id == 20) {
    rep->register_module("1", main[0]);
    rep->register_module("3", main[1]);
    rep->register_module("5", main[2]);
  }
}

std::pair<torch::Tensor, torch::Tensor> XceptionBlockImpl::forward(const torch::Tensor& x) {
  // Blocks 2, 3 and 20 start with an in-place ReLU in the original, so the skip path sees
  // ReLU(x) too (spec 3.1); block 1's input is already non-negative.
  const torch::Tensor r = id == 1 ? x : torch::relu(x);
  torch::Tensor low, y = main[0]->forward_relu(r);
  if (id == 2) {
    low = main[1](y);  // L4: before any activation
    y = main[2](torch::relu(low));
  } else {
    y = main[2](main[1]->forward_relu(y));
  }
#ifdef SPINEPARSE_WITH_ONEDNN
  if (fused_skip && y.is_contiguous(c10::MemoryFormat::ChannelsLast3d)) {
    fused_skip->forward_into(r, y, false, /*add=*/true);
    return {y, low};
  }
#endif
  return {y.add_(conv1(main[0]->split_depthwise, nullptr, skip, r, false, skipbn)), low};
}

torch::Tensor spine_adjacency() {
  // Nodes: 0 background (isolated), vertebrae 1..10, discs 11..19; disc 10+k joins k and k+1.
  auto a = torch::zeros({20, 20}, torch::kFloat64);
  for (int i = 0; i < 20; ++i) a[i][i] = 1;  // self loops from the graph
  for (int k = 1; k <= 9; ++k) {
    for (int v : {k, k + 1}) {
      a[v][10 + k] = 1;
      a[10 + k][v] = 1;
    }
  }
  a = a + torch::eye(20, torch::kFloat64);  // A~ = A + I
  auto d = a.sum(1).pow(-0.5);
  return (d.unsqueeze(1) * a * d.unsqueeze(0)).to(torch::kFloat32);
}

GcsnImpl::GcsnImpl(bool graph, int64_t n_classes, double width_)
    : with_graph(graph), width(width_) {
  // Every width scales with `width` (1 = the original); the names stay the original's.
  auto c = [w = width_](int64_t n) {
    return std::max<int64_t>(4, static_cast<int64_t>(std::lround(n * w)));
  };
  const int64_t hidden = c(128);
  auto L = std::make_shared<GcsnLayers>();
  L->xf = register_module("xception_features", std::make_shared<XceptionImpl>(c));
  auto aspp1 = register_module("aspp1", std::make_shared<Holder>());
  L->aspp1_conv = aspp1->register_module("atrous_convolution", conv1x1(c(1024), c(128)));
  L->aspp1_bn = aspp1->register_module("bn", BatchNorm3d(BatchNorm3dOptions(c(128))));
  SeparableConv* aspp[3] = {&L->aspp2, &L->aspp3, &L->aspp4};
  const int64_t rates[3] = {6, 12, 18};
  for (int i = 0; i < 3; ++i) {
    auto h = register_module("aspp" + std::to_string(i + 2), std::make_shared<Holder>());
    *aspp[i] = h->register_module(
        "atrous_convolution",
        SeparableConv(c(1024), c(128), std::vector<int64_t>{1, 1, 1}, rates[i], true));
  }
  auto gap = register_module("global_avg_pool", std::make_shared<Holder>());
  L->gap_conv = gap->register_module("1", conv1x1(c(1024), c(128)));
  L->gap_bn = gap->register_module("2", BatchNorm3d(BatchNorm3dOptions(c(128))));
  L->concat_conv = register_module("concat_projection_conv1", conv1x1(5 * c(128), c(128)));
  L->concat_bn = register_module("concat_projection_bn1", BatchNorm3d(BatchNorm3dOptions(c(128))));
  L->proj4_conv = register_module("feature_projection_conv1", conv1x1(c(128), c(24)));
  L->proj4_bn = register_module("feature_projection_bn1", BatchNorm3d(BatchNorm3dOptions(c(24))));
  L->proj2_conv = register_module("feature_projection_conv2", conv1x1(c(32), c(64)));
  L->proj2_bn = register_module("feature_projection_bn2", BatchNorm3d(BatchNorm3dOptions(c(64))));
  auto dec = [&](const char* name, int64_t in1, int64_t out, SeparableConv& a, SeparableConv& b) {
    auto h = register_module(name, std::make_shared<Holder>());
    auto h0 = h->register_module("0", std::make_shared<Holder>());
    auto h1 = h->register_module("1", std::make_shared<Holder>());
    a = h0->register_module("atrous_convolution",
                            SeparableConv(in1, out, std::vector<int64_t>{1, 1, 1}, 1, true));
    b = h1->register_module("atrous_convolution",
                            SeparableConv(out, out, std::vector<int64_t>{1, 1, 1}, 1, true));
  };
  dec("decoder1", c(128) + c(24), c(128), L->dec1a, L->dec1b);
  dec("decoder2", c(128) + c(64), c(256), L->dec2a, L->dec2b);
  if (with_graph) {
    auto f2g = register_module("featuremap_2_graph", std::make_shared<Holder>());
    L->pre_fea = f2g->register_parameter("pre_fea", torch::empty({hidden, n_classes}));
    L->graph_weight = f2g->register_parameter("weight", torch::empty({hidden, hidden}));
    torch::Tensor* gcs[3] = {&L->gc1, &L->gc2, &L->gc3};
    for (int i = 0; i < 3; ++i) {
      auto h = register_module("graph_conv" + std::to_string(i + 1), std::make_shared<Holder>());
      *gcs[i] = h->register_parameter("weight", torch::empty({hidden, hidden}));
    }
    torch::NoGradGuard ng;
    for (auto* t : {&L->pre_fea, &L->graph_weight, &L->gc1, &L->gc2, &L->gc3})
      torch::nn::init::xavier_uniform_(*t);
    auto g2f = register_module("graph_2_fea", std::make_shared<Holder>());
    L->g2f_conv = g2f->register_module("conv", conv1x1(hidden, hidden));
    L->g2f_bn = g2f->register_module("bn", BatchNorm3d(BatchNorm3dOptions(hidden)));
    auto sk = register_module("skip_conv", std::make_shared<Holder>());
    L->skip_conv = sk->register_module("0", conv1x1(c(128), c(128), true));
  }
  L->semantic = register_module("semantic", conv1x1(c(256), n_classes, true));
  adjacency = register_buffer("adjacency_", spine_adjacency());
  layers = L;
}

namespace {
// relu(bn2(conv2(relu(bn1(conv1(x)))))): the fused oneDNN convolutions where the network has them
// (channels-last-3d result).
torch::Tensor entry_convolutions(GcsnLayers& L, const torch::Tensor& x) {
  auto& xf = *L.xf;
  const auto *f1 = L.fused_of(xf.conv1), *f2 = L.fused_of(xf.conv2);
#ifdef SPINEPARSE_WITH_ONEDNN
  if (f1 && f2) return f2->forward(f1->forward(x, true), true);
#endif
  (void)f1, (void)f2;
  return torch::relu(bn_(xf.bn2, xf.conv2(torch::relu(bn_(xf.bn1, xf.conv1(x))))));
}

// relu(skip_conv(yy)) + G; with the fused convolution, added into G.
torch::Tensor skip_added(GcsnLayers& L, bool cl, const torch::Tensor& yy, torch::Tensor& G) {
#ifdef SPINEPARSE_WITH_ONEDNN
  if (const auto* f = L.fused_of(L.skip_conv);
      f && G.is_contiguous(c10::MemoryFormat::ChannelsLast3d)) {
    f->forward_into(yy, G, true, /*add=*/true);
    return G;
  }
#endif
  return conv1(cl, nullptr, L.skip_conv, yy, true) + G;
}

// X w for the voxels' features X [N, V, C] (yy [N, C, D, H, W] in channels-last-3d memory) and w
// [C, O]: [N, V, O], through the fused 1x1x1 convolution f where there is one.
torch::Tensor features_times(const FusedConv3d* f, const torch::Tensor& yy, const torch::Tensor& X,
                             const torch::Tensor& w) {
#ifdef SPINEPARSE_WITH_ONEDNN
  if (f && yy.is_contiguous(c10::MemoryFormat::ChannelsLast3d))
    return f->forward(yy, false).permute({0, 2, 3, 4, 1}).reshape({X.size(0), -1, w.size(1)});
#endif
  return torch::matmul(X, w);
}

// The last decoder and the semantic convolution on d2, the largest activations of the network,
// each freed as soon as it is used.
torch::Tensor decode2(GcsnLayers& L, bool cl, torch::Tensor d2) {
  auto y = L.dec2a(d2);
  d2.reset();
  const FusedConv3d* semantic = L.fused_of(L.semantic);
#ifdef SPINEPARSE_WITH_ONEDNN
  if (semantic && L.dec2b->split_depthwise && L.dec2b->fused)  // dec2b's result stays in cache
    return L.dec2b->fused->forward_then(y, false, *semantic);
#endif
  y = L.dec2b(y);
  return conv1(cl, semantic, L.semantic, y, false);
}

// The logits z [N, C, D, h, w] interpolated (trilinear, align_corners) to `size`, in contiguous
// (NCDHW) memory. With the slice count unchanged, as bilinear interpolation of the N x C x D planes
// read from z made contiguous: the result needs no layout change afterwards.
torch::Tensor upsampled_logits(const torch::Tensor& z, const std::vector<int64_t>& size) {
  if (size[0] != z.size(2)) return interp3(z, size).contiguous();
  const int64_t N = z.size(0), C = z.size(1), D = z.size(2);
  auto planes = z.contiguous().view({N, C * D, z.size(3), z.size(4)});
  return F::interpolate(planes, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{size[1], size[2]})
                                    .mode(torch::kBilinear)
                                    .align_corners(true))
      .view({N, C, D, size[1], size[2]});
}
}  // namespace

GcsnOutput GcsnImpl::forward(const torch::Tensor& input) {
  auto& L = *layers;
  auto& xf = *L.xf;
  const auto x = input.to(L.semantic->weight.scalar_type());
  const int64_t D = x.size(2), H = x.size(3), W = x.size(4);
  auto l2 = entry_convolutions(L, x);
  auto y = xf.block1(l2).first;
  auto [b2, l4] = xf.block2(y);
  y = xf.block3(b2).first;
  y = xf.block20(y).first;
  y = xf.conv5(xf.conv4(xf.conv3(y)));  // the original's extra ReLUs after these are no-ops

  // On CPU (split convolutions) the features stay in channels-last-3d memory from here on.
  const bool cl = xf.conv3->split_depthwise;
  auto pw = [&](Conv3d& conv, auto& bn, const torch::Tensor& in) {
    return conv1(cl, L.fused_of(conv), conv, in, true, bn);
  };
  auto a1 = pw(L.aspp1_conv, L.aspp1_bn, y);
  auto a2 = L.aspp2(y), a3 = L.aspp3(y), a4 = L.aspp4(y);
  auto pool = torch::relu(bn_(L.gap_bn, L.gap_conv(y.mean({2, 3, 4}, true))));
  pool = interp3(pool, {y.size(2), y.size(3), y.size(4)});
  auto a = pw(L.concat_conv, L.concat_bn, cat_channels(cl, {a1, a2, a3, a4, pool}));

  auto p4 = pw(L.proj4_conv, L.proj4_bn, l4);
  auto p2 = pw(L.proj2_conv, L.proj2_bn, l2);
  auto d1 = cat_channels(cl, {interp3(a, {l4.size(2), l4.size(3), l4.size(4)}), p4});
  auto yy = L.dec1b(L.dec1a(d1));
  for (auto* t : {&a, &p4, &d1}) t->reset();  // each activation freed once used: fewer pages

  GcsnOutput out;
  if (with_graph) {
    // Region pooling -> GCN -> region unpooling (spec 3.3), batched over N.
    const int64_t N = yy.size(0), C = yy.size(1);
    auto X =
        yy.permute({0, 2, 3, 4, 1}).reshape({N, -1, C});  // [N,V,C], voxels row-major over (d,h,w)
    auto Z = features_times(L.fused_pre_fea.get(), yy, X, L.pre_fea);  // [N,V,20]
    out.deep_supervision =
        Z.transpose(1, 2).reshape({N, Z.size(2), yy.size(2), yy.size(3), yy.size(4)});
    auto S = torch::softmax(Z, 2);
    auto T = features_times(L.fused_graph_weight.get(), yy, X, L.graph_weight);
    auto Hn = torch::relu(region_pool(S, T));  // [N,20,C]
    for (auto* w : {&L.gc1, &L.gc2, &L.gc3})
      Hn = torch::relu(torch::matmul(adjacency, torch::matmul(Hn, *w)));
    // [N,V,C] read as [N,C,D,H,W] in channels-last-3d memory: no copy.
    auto R = torch::matmul(S, Hn)
                 .reshape({N, yy.size(2), yy.size(3), yy.size(4), C})
                 .permute({0, 4, 1, 2, 3});
    auto G = pw(L.g2f_conv, L.g2f_bn, R);
    yy = skip_added(L, cl, yy, G);
  }
  auto d2 = cat_channels(cl, {interp3(yy, {l2.size(2), l2.size(3), l2.size(4)}), p2});
  for (auto* t : {&yy, &p2, &l2}) t->reset();
  auto z = decode2(L, cl, std::move(d2));
  out.logits = upsampled_logits(z.to(torch::kFloat32), {D, H, W});
  if (out.deep_supervision.defined())
    out.deep_supervision = out.deep_supervision.to(torch::kFloat32);
  return out;
}

ExtResBlockImpl::ExtResBlockImpl(int64_t in, int64_t out) {
  // Names: basic_module.conv{1,2,3}.{conv,batchnorm}; this block is the basic module.
  for (int i = 0; i < 3; ++i) {
    auto h = register_module("conv" + std::to_string(i + 1), std::make_shared<Holder>());
    conv[i] = h->register_module(
        "conv", torch::nn::Conv2d(
                    torch::nn::Conv2dOptions(i == 0 ? in : out, out, 3).padding(1).bias(false)));
    bn[i] =
        h->register_module("batchnorm", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out)));
  }
}

torch::Tensor ExtResBlockImpl::forward(const torch::Tensor& x) {
  // In place where a fresh result is overwritten (autograd checks that nothing it saved changes):
  // on 256x512 activations every extra elementwise pass is a full trip through memory.
  auto a = bn_(bn[0], conv[0](x)).relu_();
  auto b = bn_(bn[1], conv[1](a)).relu_();
  return bn_(bn[2], conv[2](b))
      .add_(a)
      .relu_();  // the residual is taken after the first conv's ReLU
}

ResUNet2dImpl::ResUNet2dImpl(int64_t in_channels, int64_t out_channels, int64_t f) {
  const std::vector<int64_t> widths = {f, 2 * f, 4 * f, 8 * f, 16 * f};
  auto enc = register_module("encoders", std::make_shared<Holder>());
  for (int k = 0; k < 5; ++k) {
    auto e = enc->register_module(std::to_string(k), std::make_shared<Holder>());
    encoders_.push_back(e->register_module(
        "basic_module", ExtResBlock(k == 0 ? in_channels : widths[k - 1], widths[k])));
  }
  auto dec = register_module("decoders", std::make_shared<Holder>());
  for (int k = 0; k < 4; ++k) {
    const int64_t in = widths[4 - k], out = widths[3 - k];
    auto d = dec->register_module(std::to_string(k), std::make_shared<Holder>());
    upsample_.push_back(d->register_module(
        "upsample",
        torch::nn::ConvTranspose2d(
            torch::nn::ConvTranspose2dOptions(in, out, 3).stride(2).padding(1).output_padding(1))));
    decoders_.push_back(d->register_module("basic_module", ExtResBlock(out, out)));
  }
  final_conv = register_module("final_conv",
                               torch::nn::Conv2d(torch::nn::Conv2dOptions(f, out_channels, 1)));
}

namespace {
torch::Tensor upsampled(const torch::Tensor& unary, const torch::Tensor& image) {
  return F::interpolate(unary, F::InterpolateFuncOptions()
                                   .size(std::vector<int64_t>{image.size(2), image.size(3)})
                                   .mode(torch::kBilinear)
                                   .align_corners(true));
}
}  // namespace

torch::Tensor ResUNet2dImpl::joined_input(const torch::Tensor& image, const torch::Tensor& unary,
                                          torch::ScalarType dtype) const {
  const auto up = upsampled(unary, image);
  // [image, up] concatenated, converted and laid out channels-last in one pass each.
  auto x = torch::empty({image.size(0), image.size(1) + up.size(1), image.size(2), image.size(3)},
                        image.options().dtype(dtype), torch::MemoryFormat::ChannelsLast);
  x.narrow(1, 0, image.size(1)).copy_(image);
  x.narrow(1, image.size(1), up.size(1)).copy_(up);
  return x;
}

torch::Tensor ResUNet2dImpl::forward(const torch::Tensor& image, const torch::Tensor& unary) {
  const auto dtype = final_conv->weight.scalar_type();
  if (!onednn_weights_.empty() && image.is_cpu()) {
    const auto x = joined_input(image, unary, dtype);
#ifdef SPINEPARSE_WITH_ONEDNN
    if (fused_ && x.size(2) % 16 == 0 && x.size(3) % 16 == 0) return fused_->forward(x);
#endif
    return forward_onednn(x).to(torch::kFloat32);  // channels-last kept
  }
  auto x = torch::cat({image, upsampled(unary, image)}, 1).to(dtype);
  std::vector<torch::Tensor> feats;
  for (int k = 0; k < 5; ++k) {
    if (k > 0) x = F::max_pool2d(x, F::MaxPool2dFuncOptions(2).stride(2));
    x = encoders_[k](x);
    feats.push_back(x);
  }
  for (int k = 0; k < 4; ++k) {
    x = upsample(k, x).add_(feats[3 - k]);
    x = decoders_[k](x);
  }
  return final_conv(x).to(torch::kFloat32);
}

torch::Tensor ResUNet2dImpl::upsample(int k, const torch::Tensor& x) const {
  const auto& u = upsample_[k];
  if (!(x.is_cpu() && x.scalar_type() == torch::kBFloat16))
    return torch::conv_transpose2d(x, u->weight, u->bias, 2, 1, 1);
  auto z = torch::conv2d(x, subpixel_weights(u->weight), u->bias.repeat({4}), 1, 1);
  return subpixel_shuffle(z);
}

torch::Tensor ResUNet2dImpl::conv_onednn(const torch::nn::Conv2d& conv,
                                         const torch::Tensor& x) const {
  const OneDnnConv& c = onednn_weights_.at(conv.get());
  return at::mkldnn_convolution(x, c.weight, conv->bias, c.padding, c.stride, c.dilation, c.groups);
}

torch::Tensor ResUNet2dImpl::block_onednn(const ExtResBlock& b, const torch::Tensor& x) const {
  auto a = conv_onednn(b->conv[0], x).relu_();
  auto c = conv_onednn(b->conv[1], a).relu_();
  return conv_onednn(b->conv[2], c).add_(a).relu_();
}

torch::Tensor ResUNet2dImpl::forward_onednn(torch::Tensor x) {
  std::vector<torch::Tensor> feats;
  for (int k = 0; k < 5; ++k) {
    if (k > 0) x = F::max_pool2d(x, F::MaxPool2dFuncOptions(2).stride(2));
    x = block_onednn(encoders_[k], x);
    feats.push_back(x);
  }
  for (int k = 0; k < 4; ++k) {
    const OneDnnConv& u = onednn_upsample_[k];
    auto z = at::mkldnn_convolution(x, u.weight, onednn_upsample_bias_[k], u.padding, u.stride,
                                    u.dilation, u.groups);
    x = subpixel_shuffle(z).add_(feats[3 - k]);
    x = block_onednn(decoders_[k], x);
  }
  return conv_onednn(final_conv, x);
}

torch::Tensor subpixel_weights(const torch::Tensor& w) {
  if (w.dim() != 4 || w.size(2) != 3 || w.size(3) != 3)
    throw std::logic_error("subpixel_weights: expects a 3x3 transposed convolution weight");
  const int64_t in = w.size(0), out = w.size(1);
  // Tap of the 3x3 kernel that phase r takes from window position d (-1: none): even outputs
  // 2m read input m through tap 1; odd outputs 2m+1 read m through tap 2 and m+1 through tap 0.
  const int tap[2][2] = {{1, -1}, {2, 0}};
  auto k = torch::zeros({2, 2, out, in, 2, 2}, w.options());
  for (int ri = 0; ri < 2; ++ri)
    for (int rj = 0; rj < 2; ++rj)
      for (int d = 0; d < 2; ++d)
        for (int e = 0; e < 2; ++e) {
          if (tap[ri][d] < 0 || tap[rj][e] < 0) continue;
          k[ri][rj].select(3, e).select(2, d).copy_(
              w.select(3, tap[rj][e]).select(2, tap[ri][d]).t());
        }
  return k.reshape({4 * out, in, 2, 2});
}

torch::Tensor subpixel_shuffle(const torch::Tensor& z) {
  const int64_t N = z.size(0), out = z.size(1) / 4, H = z.size(2) - 1, W = z.size(3) - 1;
  auto phases = z.slice(2, 1).slice(3, 1).permute({0, 2, 3, 1}).reshape({N, H, W, 2, 2, out});
  // [N, H, ri, W, rj, out] is [N, 2H, 2W, out]: the result in channels-last memory.
  return phases.permute({0, 1, 3, 2, 4, 5}).reshape({N, 2 * H, 2 * W, out}).permute({0, 3, 1, 2});
}

}  // namespace spineparse::nn
