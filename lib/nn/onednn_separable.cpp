#include "nn/onednn_separable.hpp"

#include <ATen/Parallel.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <tuple>
#include <type_traits>

#include "nn/depthwise_rows.hpp"
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
// (a dilation of 12 on an 8-pixel axis leaves the centre tap alone).
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
    if (add && centre.reference) {  // no kernel here adds after the ReLU (AVX2): add it after
      auto t = output_for(x.sizes(), x.options());
      run(x, t, relu, false);
      y.add_(t);
      return;
    }
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

int64_t FusedConv3d::input_channels() const {
  return impl_->weight.size(1) * impl_->groups;
}

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

// The depthwise convolution's taps and bias as the rows read them (depthwise_rows::Taps).
struct FusedSeparableConv::Depthwise {
  depthwise_rows::Taps taps;
  int64_t c = 0, stride = 1, dilation = 1;
  bool relu = false;

  Depthwise(const torch::Tensor& weight, const torch::Tensor& b, int64_t dil, int64_t s, bool r)
      : taps(floats(weight.to(torch::kFloat32).reshape({weight.size(0), 27}).t()),
             floats(b.to(torch::kFloat32))),
        c(weight.size(0)),
        stride(s),
        dilation(dil),
        relu(r) {}

  static std::vector<float> floats(const torch::Tensor& t) {
    const auto v = t.contiguous();
    return {v.data_ptr<float>(), v.data_ptr<float>() + v.numel()};
  }

  // Output rows [begin, end) of the N D H' rows of a [N, C, D, H', W'] result, written
  // contiguously from out, from x (channels-last-3d, [N, C, D, H, W]); at stride 1 and dilation 1
  // two rows of a slice at a time.
  template <class T>
  void rows(const T* x, at::IntArrayRef in, int64_t out_h, int64_t out_w, int64_t begin,
            int64_t end, T* out) const {
    const int64_t D = in[2], H = in[3], W = in[4];
    const depthwise_rows::RowShape shape{W, out_w, c, stride, dilation};
    // Input row h of the slice nd + kd (nd: the output row's n D + d), null in the padding.
    auto input = [&](int64_t nd, int64_t kd, int64_t h) -> const T* {
      const int64_t d = nd % D + kd;
      return d >= 0 && d < D && h >= 0 && h < H ? x + ((nd + kd) * H + h) * W * c : nullptr;
    };
    const bool pairs = stride == 1 && dilation == 1;
    for (int64_t r = begin; r < end;) {
      const int64_t nd = r / out_h, ho = r % out_h;
      T* o = out + (r - begin) * out_w * c;
      if (pairs && r + 1 < end && ho + 1 < out_h) {
        const T* in_rows[12];
        for (int64_t kd = 0; kd < 3; ++kd)
          for (int64_t i = 0; i < 4; ++i) in_rows[kd * 4 + i] = input(nd, kd - 1, ho - 1 + i);
        if constexpr (std::is_same_v<T, float>)
          depthwise_rows::rows2_f32(in_rows, shape, taps, relu, o, o + out_w * c);
        else
          depthwise_rows::rows2_bf16(in_rows, shape, taps, relu, o, o + out_w * c);
        r += 2;
        continue;
      }
      const T* in_rows[9];
      for (int64_t kd = 0; kd < 3; ++kd)
        for (int64_t kh = 0; kh < 3; ++kh)
          in_rows[kd * 3 + kh] = input(nd, (kd - 1) * dilation, ho * stride + (kh - 1) * dilation);
      if constexpr (std::is_same_v<T, float>)
        depthwise_rows::row_f32(in_rows, shape, taps, relu, o);
      else
        depthwise_rows::row_bf16(in_rows, shape, taps, relu, o);
      ++r;
    }
  }
};

void FusedConv3d::run_rows(const void* src, int64_t rows, int64_t w, void* dst, bool relu) const {
  if (impl_->k != 1) throw std::logic_error("FusedConv3d::run_rows: kernel 1x1x1 only");
  const ConvPrim& p = impl_->prim(0, false, relu, false, 1, rows, w);
  thread_local std::vector<char> scratch;
  if (scratch.size() < p.scratch.get_size() + 1) scratch.resize(p.scratch.get_size() + 1);
  dnnl::stream s(onednn::engine());
  onednn::run_conv(p, s, src, dst, scratch.data());
  s.wait();
}

FusedSeparableConv::FusedSeparableConv(const SeparableConvImpl& s, torch::ScalarType dtype)
    : dtype_(dtype), activations_(s.activations) {
  const auto& dw = s.depthwise;
  if (!dw->bias.defined() || !s.pointwise->bias.defined())
    throw std::logic_error("FusedSeparableConv: fold the BatchNorms first");
  if (dtype != torch::kFloat32 && dtype != torch::kBFloat16)
    throw std::runtime_error("FusedSeparableConv: float32 or bfloat16 only");
  depthwise_ = std::make_unique<const Depthwise>(dw->weight, dw->bias, s.dilation, s.stride[1],
                                                 s.activations);
  pointwise_ =
      std::make_unique<const FusedConv3d>(s.pointwise->weight, s.pointwise->bias, 1, 1, 1, dtype);
}

FusedSeparableConv::~FusedSeparableConv() = default;

// Depthwise results per tile: half the CPU's L2 cache (512 KB where the C library cannot tell),
// so that a tile's depthwise rows are still there when the pointwise convolution reads them.
int64_t FusedSeparableConv::tile_bytes() {
  static const int64_t bytes = [] {
    const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return l2 > 0 ? std::clamp<int64_t>(l2 / 2, 128 << 10, 4 << 20) : int64_t{512} << 10;
  }();
  return bytes;
}

namespace {
// `bytes` (rounded up to 64) of 64-byte aligned memory.
std::unique_ptr<char, decltype(&std::free)> aligned_bytes(int64_t bytes) {
  const auto n = static_cast<std::size_t>((bytes + 63) / 64 * 64);
  std::unique_ptr<char, decltype(&std::free)> p(static_cast<char*>(std::aligned_alloc(64, n)),
                                                &std::free);
  if (n && !p) throw std::bad_alloc();
  return p;
}

// `rows` rows of `row_bytes` each in tiles of about `tile_bytes`, at least one per thread.
struct Tiling {
  int64_t rows_per_tile, tiles;
  Tiling(int64_t rows, int64_t row_bytes, int64_t tile_bytes, int64_t threads) {
    int64_t n = (rows * row_bytes + tile_bytes - 1) / tile_bytes;
    n = std::min(rows, (n + threads - 1) / threads * threads);
    rows_per_tile = (rows + n - 1) / n;
    tiles = (rows + rows_per_tile - 1) / rows_per_tile;
  }
};
}  // namespace

// Tile by tile (whole output rows, about tile_bytes() of depthwise results and, with `then`, of
// the pointwise results), each thread a run of consecutive tiles (neighbours share input rows,
// still in its cache): the depthwise rows into a buffer of the thread's, then the pointwise
// convolution of that buffer straight into the result, or into a second buffer that `then`
// convolves into the result. So the depthwise result (and with `then` the separable one) never
// goes out to memory. Each thread runs its tiles' convolutions on its own (oneDNN runs a
// primitive called inside a parallel region on the calling thread).
torch::Tensor FusedSeparableConv::run(const torch::Tensor& input, bool relu,
                                      const FusedConv3d* then) const {
  const auto x = input.to(dtype_).contiguous(torch::MemoryFormat::ChannelsLast3d);
  const int64_t N = x.size(0), C = x.size(1), D = x.size(2), s = depthwise_->stride;
  const int64_t out_h = (x.size(3) - 1) / s + 1, out_w = (x.size(4) - 1) / s + 1;
  const std::vector<int64_t> mid = pointwise_->output_sizes({N, C, D, out_h, out_w});
  if (then && (then->input_channels() != mid[1] || then->output_sizes(mid)[3] != out_h))
    throw std::logic_error("FusedSeparableConv: `then` of other input channels or a stride");
  auto y = then ? then->output_for(mid, x.options()) : pointwise_->output_for(mid, x.options());
  const int64_t rows = N * D * out_h, es = x.element_size(), row_bytes = out_w * C * es;
  const int64_t mid_row_bytes = then ? out_w * mid[1] * es : 0;
  const Tiling tiling(rows, row_bytes + mid_row_bytes, tile_bytes(), at::get_num_threads());
  const int64_t tile = tiling.rows_per_tile;
  auto* out = static_cast<char*>(y.data_ptr());
  const int64_t out_row_bytes = out_w * y.size(1) * y.element_size();
  const bool pointwise_relu = activations_ || relu;
  at::parallel_for(0, tiling.tiles, 1, [&](int64_t begin, int64_t end) {
    const auto buffer = aligned_bytes(tile * row_bytes);
    const auto between = aligned_bytes(tile * mid_row_bytes);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t r0 = t * tile, n = std::min(tile, rows - r0);
      if (dtype_ == torch::kFloat32)
        depthwise_->rows(x.data_ptr<float>(), x.sizes(), out_h, out_w, r0, r0 + n,
                         reinterpret_cast<float*>(buffer.get()));
      else
        depthwise_->rows(static_cast<const uint16_t*>(x.data_ptr()), x.sizes(), out_h, out_w, r0,
                         r0 + n, reinterpret_cast<uint16_t*>(buffer.get()));
      char* dst = out + r0 * out_row_bytes;
      pointwise_->run_rows(buffer.get(), n, out_w, then ? between.get() : dst, pointwise_relu);
      if (then) then->run_rows(between.get(), n, out_w, dst, false);
    }
  });
  return y;
}

torch::Tensor FusedSeparableConv::forward(const torch::Tensor& input, bool relu) const {
  return run(input, relu, nullptr);
}

torch::Tensor FusedSeparableConv::forward_then(const torch::Tensor& input, bool relu,
                                               const FusedConv3d& then) const {
  return run(input, relu, &then);
}

}  // namespace spineparse::nn
