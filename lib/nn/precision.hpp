// The arithmetic a network runs in, chosen per machine at run time. Light header (no LibTorch):
// the CLI's bench and the network stages share it.
//
//   auto: bfloat16 on a CPU with native bfloat16 instructions (AVX512_BF16 or AMX-BF16, with the
//         OS saving their state), float32 on other CPUs; float16 autocast on CUDA.
//   fp32: float32 everywhere (the path that matches the original to 1e-3).
//   bf16: bfloat16 weights and activations on the CPU (softmax, resampling and argmax stay
//         float32); bfloat16 autocast on CUDA. Allowed on CPUs without native bfloat16, where it
//         is emulated and usually slower than float32.
//   fp16: float16 autocast on CUDA; refused on the CPU (LibTorch has no float16 CPU convolutions).
//   int8: ResUNet2D only, on the CPU: int8 convolutions (oneDNN: AVX2, AVX-512 VNNI, AMX) with
//         the activation ranges calibrated for its weights (`spineparse calibrate`); refused on
//         CUDA. `auto` picks it for fine.resunet when the weights record a calibration whose labels
//         agreed with fp32's on >= 99.9 % of voxels.
#pragma once

#include <string>

namespace spineparse::nn {

enum class Precision { kFloat32, kBFloat16, kFloat16, kInt8 };

// "fp32", "bf16", "fp16", "int8".
const char* precision_name(Precision p);

// What the CPU offers, from CPUID and XGETBV (instructions present and their state enabled by the
// operating system), read once, less what oneDNN's ISA cap (ONEDNN_MAX_CPU_ISA) leaves out.
// `model` is /proc/cpuinfo's "model name" (or CPUID's brand).
struct CpuFeatures {
  std::string model;
  bool avx2 = false, fma = false;
  bool avx512f = false, avx512_bf16 = false, avx512_fp16 = false;
  bool amx_tile = false, amx_bf16 = false;
  bool native_bf16() const { return avx512_bf16 || amx_bf16; }
  // The widest float32 and bfloat16 instruction sets, for reports: "AMX-BF16", "AVX512_BF16",
  // "AVX-512", "AVX2", "SSE".
  std::string bf16_isa() const;
  std::string fp32_isa() const;
};
const CpuFeatures& cpu_features();

// The precision a network stage runs in, and why (one line for run.json and reports).
struct PrecisionChoice {
  Precision precision = Precision::kFloat32;
  std::string reason;
};
// requested: "auto", "fp32", "bf16", "fp16" or "int8". Throws for an unknown value, for fp16 on
// the CPU and for int8 on CUDA.
PrecisionChoice choose_precision(const std::string& requested, bool cuda,
                                 const CpuFeatures& cpu = cpu_features());

}  // namespace spineparse::nn
