#include "nn/onednn_conv.hpp"

#include <torch/torch.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

namespace spineparse::nn::onednn {

using dnnl::memory;
using tag = dnnl::memory::format_tag;

const dnnl::engine& engine() {
  static const dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

namespace {
memory::data_type dnnl_type(torch::ScalarType t) {
  return t == torch::kBFloat16 ? memory::data_type::bf16 : memory::data_type::f32;
}
int64_t out_size(int64_t n, int64_t k, int64_t pad, int64_t dil, int64_t stride) {
  return (n + 2 * pad - dil * (k - 1) - 1) / stride + 1;
}
std::atomic<int> g_reference_runs{0};
}  // namespace

int reference_convolutions_run() { return g_reference_runs.load(); }

ConvPrim make_conv(const ConvSpec& c, torch::ScalarType dtype, int64_t n, int64_t h, int64_t w) {
  const auto dt = c.int8 ? memory::data_type::s8 : dnnl_type(dtype);  // the weights'
  const auto src_dt = c.int8 ? c.int8->src : dt;
  const auto dst_dt = c.float_out ? memory::data_type::f32 : c.int8 ? c.int8->dst : dt;
  const int64_t O = c.weight.size(0), Ig = c.weight.size(1), kh = c.weight.size(2),
                kw = c.weight.size(3), G = c.groups;
  // A kernel of size 1 along an axis has no padding or dilation there.
  const int64_t ph = kh > 1 ? c.pad : 0, pw = kw > 1 ? c.pad : 0;
  const int64_t dh = kh > 1 ? c.dilation : 1, dw = kw > 1 ? c.dilation : 1;
  const memory::dims pad = {ph, pw}, stride = {c.stride, c.stride}, dil = {dh - 1, dw - 1};
  ConvPrim p;
  p.out_h = out_size(h, kh, ph, dh, c.stride);
  p.out_w = out_size(w, kw, pw, dw, c.stride);
  p.out_c = O;
  const memory::desc src({n, Ig * G, h, w}, src_dt, tag::nhwc);
  const memory::dims wdims =
      G > 1 ? memory::dims{G, O / G, Ig, kh, kw} : memory::dims{O, Ig, kh, kw};
  const memory::desc wei(wdims, dt, tag::any);
  const memory::desc bia({O}, memory::data_type::f32, tag::a);
  const memory::desc dst({n, O, p.out_h, p.out_w}, dst_dt, tag::nhwc);
  dnnl::post_ops po;
  if (c.sum) po.append_sum(c.int8 ? c.int8->sum_scale : 1.f);
  if (c.relu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  if (c.add_after) po.append_sum(1.f);
  dnnl::primitive_attr attr;
  if (c.int8) attr.set_output_scales(1 << 1, c.int8->out_scales);  // per output channel
  attr.set_post_ops(po);
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                          dnnl::algorithm::convolution_direct, src, wei, bia, dst,
                                          stride, dil, pad, pad);
  const dnnl::convolution_forward::primitive_desc pd(d, attr, engine());
  p.conv = dnnl::convolution_forward(pd);
  p.src = pd.src_desc();
  p.dst = pd.dst_desc();
  p.scratch = pd.scratchpad_desc();
  p.reference = std::string(pd.impl_info_str()).rfind("ref", 0) == 0;
  // Weights and bias: reordered (and converted) once into memory the primitive owns.
  auto user_w = (c.int8 ? c.weight.to(torch::kChar) : c.weight.to(dtype)).contiguous();
  memory user(memory::desc(wdims, dt, G > 1 ? tag::goihw : tag::oihw), engine(), user_w.data_ptr());
  p.weights = memory(pd.weights_desc(), engine());
  dnnl::stream s(engine());
  dnnl::reorder(user, p.weights).execute(s, user, p.weights);
  s.wait();
  p.bias = memory(bia, engine());
  auto b = c.bias.to(torch::kFloat32).contiguous();
  std::memcpy(p.bias.get_data_handle(), b.data_ptr(), static_cast<std::size_t>(O) * sizeof(float));
  return p;
}

void run_conv(const ConvPrim& p, dnnl::stream& s, const void* src, void* dst, void* scratch) {
  if (p.reference && g_reference_runs++ == 0)
    std::fprintf(stderr,
                 "warning: oneDNN has no kernel of this CPU for one of the networks' "
                 "convolutions and runs its reference implementation, much slower "
                 "(ONEDNN_VERBOSE=1 names it)\n");
  memory src_m(p.src, engine(), const_cast<void*>(src));
  memory dst_m(p.dst, engine(), dst);
  memory scr(p.scratch, engine(), scratch);
  p.conv.execute(s, {{DNNL_ARG_SRC, src_m},
                     {DNNL_ARG_WEIGHTS, p.weights},
                     {DNNL_ARG_BIAS, p.bias},
                     {DNNL_ARG_DST, dst_m},
                     {DNNL_ARG_SCRATCHPAD, scr}});
}

Int8ProbeOps int8_probe_ops(int64_t n) {
  Int8ProbeOps ops;
  const int64_t c = 128, h = 128, w = 256;
  ConvSpec spec;
  spec.weight = torch::ones({c, c, 3, 3}, torch::kChar);
  spec.bias = torch::zeros({c});
  spec.pad = 1;
  spec.relu = true;
  spec.int8 = Int8Conv{};
  spec.int8->out_scales.assign(static_cast<std::size_t>(c), 1e-3f);
  auto conv = std::make_shared<const ConvPrim>(make_conv(spec, torch::kFloat, 1, h, w));
  auto src = torch::ones({h * w * c}, torch::kByte), dst = torch::empty_like(src);
  auto scratch = torch::empty({static_cast<int64_t>(conv->scratch.get_size()) + 1}, torch::kByte);
  ops.conv = [conv, src, dst, scratch] {
    dnnl::stream s(engine());
    run_conv(*conv, s, src.data_ptr(), dst.data_ptr(), scratch.data_ptr());
    s.wait();
  };
  ops.conv_flops = 2.0 * c * c * 9 * h * w;
  const memory::desc a({n, n}, memory::data_type::u8, tag::ab),
      b({n, n}, memory::data_type::s8, tag::ab), d({n, n}, memory::data_type::s32, tag::ab);
  const dnnl::matmul mm(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, d), engine()));
  memory am(a, engine()), bm(b, engine()), dm(d, engine());
  std::memset(am.get_data_handle(), 1, static_cast<std::size_t>(n * n));
  std::memset(bm.get_data_handle(), 1, static_cast<std::size_t>(n * n));
  ops.gemm = [mm, am, bm, dm] {
    dnnl::stream s(engine());
    mm.execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, dm}});
    s.wait();
  };
  ops.gemm_flops = 2.0 * static_cast<double>(n) * n * n;
  return ops;
}

}  // namespace spineparse::nn::onednn
