#include "nn/peak.hpp"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <exception>
#include <functional>
#include <stdexcept>
#include <thread>

#include "nn/torch_util.hpp"
#ifdef SPINEPARSE_WITH_ONEDNN
#include "nn/onednn_conv.hpp"
#endif

namespace spineparse::nn {
namespace {

torch::ScalarType dtype_of(Precision p) {
  switch (p) {
    case Precision::kBFloat16:
      return torch::kBFloat16;
    case Precision::kFloat16:
      return torch::kHalf;
    default:
      return torch::kFloat32;
  }
}

// Best rate over `reps` timed runs of `op` (after one untimed run), in GFLOP/s.
double best_rate(const std::function<void()>& op, double flops, const torch::Device& device,
                 int reps) {
  auto sync = [&device] {  // the probed device, not the current one
    if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : 0);
  };
  op();
  sync();
  double best = 0;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    op();
    sync();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0) best = std::max(best, flops / s / 1e9);
  }
  return best;
}

PeakProbe probe(Precision precision, const std::string& device_spec, int threads) {
  c10::InferenceMode guard;
  const torch::Device device(device_spec);
  const bool cuda = device.is_cuda();
  if (!cuda) set_torch_threads(threads);
  PeakProbe p;
  p.precision = precision_name(precision);
  p.device = device.str();
  p.threads = cuda ? 0 : threads;
  if (precision == Precision::kInt8) {  // oneDNN's int8 kernels, which precision=int8 runs
    if (cuda) throw std::runtime_error("int8 runs on the CPU only");
#ifdef SPINEPARSE_WITH_ONEDNN
    const auto ops = onednn::int8_probe_ops(2048);
    p.gemm_gflops = best_rate(ops.gemm, ops.gemm_flops, device, 5);
    p.conv_gflops = best_rate(ops.conv, ops.conv_flops, device, 5);
    return p;
#else
    throw std::runtime_error("this build has no oneDNN API (libdnnl-dev): no int8 kernels");
#endif
  }
  const auto opts = torch::TensorOptions().dtype(dtype_of(precision)).device(device);
  const int64_t n = cuda ? 4096 : 2048;
  auto a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts);
  const double gemm_flops = 2.0 * n * n * n;
  p.gemm_gflops = best_rate([&] { (void)torch::mm(a, b); }, gemm_flops, device, 5);
  const int64_t c = 128, h = 128, w = 256;
  auto x =
      torch::randn({cuda ? 16 : 1, c, h, w}, opts).contiguous(torch::MemoryFormat::ChannelsLast);
  auto k = torch::randn({c, c, 3, 3}, opts).contiguous(torch::MemoryFormat::ChannelsLast);
  const double conv_flops = 2.0 * x.size(0) * c * c * 9 * h * w;
  p.conv_gflops = best_rate([&] { (void)torch::conv2d(x, k, {}, 1, 1); }, conv_flops, device, 5);
  return p;
}

}  // namespace

PeakProbe measure_peak(Precision precision, const std::string& device, int threads) {
  PeakProbe result;
  std::exception_ptr error;
  std::thread worker([&] {
    try {
      result = probe(precision, device, threads);
    } catch (...) {
      error = std::current_exception();
    }
  });
  worker.join();
  if (error) std::rethrow_exception(error);
  return result;
}

}  // namespace spineparse::nn
