#include "nn/precision.hpp"

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define SPINEPARSE_X86 1
#endif

namespace spineparse::nn {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::kBFloat16:
      return "bf16";
    case Precision::kFloat16:
      return "fp16";
    case Precision::kInt8:
      return "int8";
    default:
      return "fp32";
  }
}

namespace {

std::string cpuinfo_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) break;
    const auto start = line.find_first_not_of(' ', colon + 1);
    return start == std::string::npos ? "" : line.substr(start);
  }
  return "";
}

#ifdef SPINEPARSE_X86
bool bit(unsigned reg, int b) { return (reg >> b) & 1u; }

unsigned long long xgetbv0() {
  unsigned eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  f.model = cpuinfo_model();
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = bit(c, 27);
  const unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
  const bool ymm_state = (xcr0 & 0x6) == 0x6;                 // SSE and AVX state
  const bool zmm_state = ymm_state && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
  const bool tile_state = (xcr0 & 0x60000) == 0x60000;        // XTILECFG, XTILEDATA
  f.fma = ymm_state && bit(c, 12);
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = ymm_state && bit(b, 5);
  f.avx512f = zmm_state && bit(b, 16);
  f.avx512_fp16 = f.avx512f && bit(d, 23);
  f.amx_tile = tile_state && bit(d, 24);
  f.amx_bf16 = f.amx_tile && bit(d, 22);
  const unsigned subleaves = a;
  if (subleaves >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    f.avx512_bf16 = f.avx512f && bit(a, 5);
  }
  if (f.model.empty()) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      unsigned r[4];
      if (!__get_cpuid(0x80000002u + i, &r[0], &r[1], &r[2], &r[3])) break;
      for (int k = 0; k < 4; ++k) std::memcpy(brand + 16 * i + 4 * k, &r[k], 4);
    }
    f.model = brand;
  }
  return f;
}
#else
CpuFeatures detect() {
  CpuFeatures f;
  f.model = cpuinfo_model();
  return f;
}
#endif

}  // namespace

std::string CpuFeatures::bf16_isa() const {
  if (amx_bf16) return "AMX-BF16";
  if (avx512_bf16) return "AVX512_BF16";
  return "none (emulated)";
}

std::string CpuFeatures::fp32_isa() const {
  if (avx512f) return "AVX-512";
  if (avx2 && fma) return "AVX2";
  return "SSE";
}

namespace {

// oneDNN's ISA cap (ONEDNN_MAX_CPU_ISA, or its former name DNNL_MAX_CPU_ISA): what oneDNN will
// not use counts as absent. Below AVX512_CORE_BF16 its kernels do not use the bfloat16
// instructions, so neither may `auto`.
void apply_isa_cap(CpuFeatures& f) {
  const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
  if (!cap) cap = std::getenv("DNNL_MAX_CPU_ISA");
  if (!cap) return;
  std::string isa(cap);
  for (auto& ch : isa) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (isa == "ALL" || isa.rfind("AVX512_CORE_AMX", 0) == 0) return;
  f.amx_tile = f.amx_bf16 = false;
  if (isa == "AVX512_CORE_BF16" || isa == "AVX512_CORE_FP16") return;
  f.avx512_bf16 = false;
  if (isa.rfind("AVX512", 0) == 0) return;
  f.avx512f = f.avx512_fp16 = false;
  if (isa.rfind("AVX2", 0) == 0) return;
  f.avx2 = false;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures d = detect();
    apply_isa_cap(d);
    return d;
  }();
  return f;
}

PrecisionChoice choose_precision(const std::string& requested, bool cuda, const CpuFeatures& cpu) {
  PrecisionChoice c;
  if (requested == "fp32") {
    c.reason = "precision=fp32";
  } else if (requested == "bf16") {
    c.precision = Precision::kBFloat16;
    c.reason = cuda ? "precision=bf16 (bfloat16 autocast on CUDA)"
               : cpu.native_bf16()
                   ? "precision=bf16 (CPU with " + cpu.bf16_isa() + ")"
                   : "precision=bf16 on a CPU without native bfloat16 (emulated, usually slower "
                     "than fp32)";
  } else if (requested == "fp16") {
    if (!cuda)
      throw std::runtime_error(
          "precision=fp16 needs CUDA: LibTorch has no float16 convolutions on the CPU (use bf16 "
          "or fp32)");
    c.precision = Precision::kFloat16;
    c.reason = "precision=fp16 (float16 autocast on CUDA)";
  } else if (requested == "int8") {
    if (cuda)
      throw std::runtime_error(
          "precision=int8 is for the CPU (oneDNN's int8 convolutions); on "
          "CUDA use fp16, bf16 or fp32");
    c.precision = Precision::kInt8;
    c.reason = "precision=int8 (calibrated int8 convolutions, " + cpu.fp32_isa() + ")";
  } else if (requested == "auto") {
    if (cuda) {
      c.precision = Precision::kFloat16;
      c.reason = "auto: float16 autocast on CUDA";
    } else if (cpu.native_bf16()) {
      c.precision = Precision::kBFloat16;
      c.reason = "auto: the CPU has native bfloat16 (" + cpu.bf16_isa() + ")";
    } else {
      c.reason = "auto: the CPU has no native bfloat16 (AVX512_BF16 or AMX-BF16), float32 with " +
                 cpu.fp32_isa();
    }
  } else {
    throw std::runtime_error("precision '" + requested + "' is not auto, fp32, bf16, fp16 or int8");
  }
  return c;
}

}  // namespace spineparse::nn
