// The machine's own peak for the networks' arithmetic, measured: a short probe of a large matrix
// product and of a 3x3 convolution as the networks run them (LibTorch, oneDNN), at a precision,
// on a device, with a number of intra-op threads. Light header (no LibTorch): bench includes it.
#pragma once

#include <string>

#include "nn/precision.hpp"

namespace spineparse::nn {

struct PeakProbe {
  std::string precision;   // "fp32", "bf16", "fp16"
  std::string device;      // "cpu", "cuda:0"
  int threads = 0;         // intra-op threads (CPU)
  double gemm_gflops = 0;  // best of several 2048^3 matrix products (4096^3 on CUDA)
  double conv_gflops = 0;  // best of several 3x3 convolutions, 128 -> 128 channels, 128 x 256
  double peak_gflops() const { return gemm_gflops > conv_gflops ? gemm_gflops : conv_gflops; }
};

// Runs on a fresh thread (LibTorch fixes a thread's OpenMP team at its first parallel operator).
// device: "cpu" or "cuda[:N]". Takes about a second per call on a CPU.
PeakProbe measure_peak(Precision precision, const std::string& device, int threads);

}  // namespace spineparse::nn
