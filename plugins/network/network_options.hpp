// What the network stages (coarse.gcsn, fine.resunet) state for the tools, once: their kinds,
// their parameters (the stages decode their node's params with these sets; bench, run and train
// name a parameter by its member), the facts they note in run.json and the GFLOP attribute they
// set on each case. Header only, without LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "spineparse/param_set.hpp"

namespace spineparse::plugins::network {

// What every network stage takes.
struct NetworkOptions {
  std::string weights;
  std::string model;
  std::string device = "auto";
  std::string precision = "auto";
  bool amp = false;
  std::int64_t cores = 0;
  std::int64_t min_cores = 0;
  bool optimize = true;
  bool random_weights = false;
  bool tf32 = false;
};

// The options plain eager LibTorch runs a network with: float32, one slice per forward pass, no
// BatchNorm folding or layout rewrites (bench's baseline).
inline void make_eager(NetworkOptions& o) {
  o.precision = "fp32";
  o.amp = false;
  o.optimize = false;
}

// The facts each network node notes in run.json's "nodes" (StageContext::note), by key.
struct NetworkNotes {
  static constexpr const char* kPrecision = "precision";
  static constexpr const char* kPrecisionReason = "precision_reason";
  static constexpr const char* kDevice = "device";
  static constexpr const char* kCpu = "cpu";    // the CPU model, for CPU devices
  static constexpr const char* kTf32 = "tf32";  // CUDA: "on" or "off"
};

// The case attribute with the GFLOP a network node spent on the case (its forward passes).
inline std::string gflop_attribute(const std::string& node_id) { return "gflop." + node_id; }

// What a network stage declares it writes beside its fields.
inline StageAttributes network_attributes() {
  StageAttributes a;
  a.writes = {{gflop_attribute("NODE"), false,
               "GFLOP of the case's forward passes (NODE: the node's id), for bench"}};
  return a;
}

struct GcsnOptions : NetworkOptions {
  static constexpr const char* kKind = "coarse.gcsn";
  GcsnOptions() { model = "gcsn"; }
  std::string depthwise = "auto";
  static void declare(ParamSet<GcsnOptions>& s);
};

struct ResUNetOptions : NetworkOptions {
  static constexpr const char* kKind = "fine.resunet";
  ResUNetOptions() { model = "resunet2d"; }
  std::int64_t batch_size = 0;
  std::string batch_across_cases = "auto";
  double batch_wait_ms = 0.0;
  bool calibrate = false;
  static void declare(ParamSet<ResUNetOptions>& s);
};

// The shared parameters, `model` among them with the network's own choices; `int8`: the network
// also offers precision=int8.
template <class O>
void add_network_params(ParamSet<O>& s, std::vector<std::string> models, std::string model_help,
                        bool int8 = false) {
  s.add(&O::weights, "weights",
        "safetensors state dict (or TorchScript file for model=torchscript)")
      .required()
      .existing("random_weights");
  s.add(&O::model, "model", std::move(model_help)).one_of(std::move(models));
  s.add(&O::device, "device", "cpu, cuda, cuda:N or auto");
  std::vector<std::string> precisions = {"auto", "fp32", "bf16", "fp16"};
  if (int8) precisions.push_back("int8");
  s.add(&O::precision, "precision",
        std::string("auto: bf16 on CPUs with native bfloat16 (AVX512_BF16, AMX-BF16; detected at "
                    "run time), fp16 autocast on CUDA, fp32 elsewhere; fp32; bf16; fp16 (CUDA "
                    "only)") +
            (int8 ? "; int8 (CPU only: int8 convolutions at the activation ranges `spineparse "
                    "calibrate` recorded in the weights file; auto picks it on the CPU when that "
                    "calibration's labels agreed with fp32's on >= 99.9 % of voxels)"
                  : ""))
      .one_of(std::move(precisions));
  s.add(&O::amp, "amp",
        "former name: amp=true with precision=auto means bf16 on the CPU, fp16 on CUDA");
  s.add(&O::cores, "cores",
        "CPU cores a call holds alone, its intra-op threads (the executor grants them, waiting "
        "until they are all free): 0, every core of the run; N, N of them (at most the run's "
        "threads), leaving the others to other stages")
      .range(0, 4096);
  s.add(&O::min_cores, "min_cores",
        "0: a call waits until its `cores` are all free; N: it starts once N are free, with "
        "every core free then, and the fine network takes more between slices while no other "
        "call waits for one (over a cohort, networks then share the cores with the CPU stages "
        "instead of waiting for them; docs/performance.md)")
      .range(0, 4096);
  s.add(&O::optimize, "optimize",
        "inference rewrites that keep the results: BatchNorm folded into the convolutions; on "
        "the CPU channels-last oneDNN convolutions with their ReLUs and sums fused (the GCSN's "
        "separable convolutions tile by tile, ResUNet2D's upsampling as sub-pixel "
        "convolutions); on CUDA channels-last layout");
  s.add(&O::tf32, "tf32",
        "CUDA: let float32 convolutions and matrix products use TensorFloat-32 (faster on "
        "Ampere and later, about 3 decimal digits); off, fp32 is float32 as on the CPU. One "
        "setting per process");
  s.add(&O::random_weights, "random_weights",
        "benchmarking only: the full-size network with seeded random weights instead of the "
        "weights file (meaningless segmentation; spineparse bench uses it when the weights file "
        "is missing)");
}

inline void make_eager(ResUNetOptions& o) {
  make_eager(static_cast<NetworkOptions&>(o));
  o.batch_size = 1;
}

inline void GcsnOptions::declare(ParamSet<GcsnOptions>& s) {
  add_network_params(s, {"gcsn", "deeplab", "torchscript"},
                     "gcsn; deeplab (the pretraining network without the graph module); "
                     "torchscript (custom network, same contract)");
  s.add(&GcsnOptions::depthwise, "depthwise",
        "with optimize, how the 3x3x3 depthwise convolutions run: planes (on the CPU with "
        "oneDNN, a few rows at a time in one pass, each tile's pointwise convolution straight "
        "after; elsewhere 2-D convolutions over all slices, summed over the kernel's planes), "
        "grouped (one grouped 3-D convolution); auto: planes on the CPU, grouped on CUDA (not "
        "yet measured on a GPU)")
      .one_of({"auto", "planes", "grouped"});
}

inline void ResUNetOptions::declare(ParamSet<ResUNetOptions>& s) {
  using O = ResUNetOptions;
  add_network_params(s, {"resunet2d", "torchscript"},
                     "resunet2d; torchscript (custom network: forward(image, unary) -> logits)",
                     /*int8=*/true);
  s.add(&O::batch_size, "batch_size",
        "slices per forward pass; 0: 1 on the CPU (fastest here, and each slice takes the "
        "thread share of the moment), 16 on CUDA")
      .range(0, 256);
  s.add(&O::batch_across_cases, "batch_across_cases",
        "let slices of different cases share a forward pass (one pass at a time); auto: on "
        "for CUDA, off on the CPU (where cases run side by side instead)")
      .one_of({"auto", "on", "off"});
  s.add(&O::batch_wait_ms, "batch_wait_ms",
        "with batch_across_cases: how long a pass waits for a full batch before running a "
        "partial one")
      .range(0, 10000);
  s.add(&O::calibrate, "calibrate",
        "with precision=fp32 and optimize on the CPU: record the int8 activation ranges of every "
        "slice into OUTPUT/calibration/int8_ranges.json (what `spineparse calibrate` runs)");
}

}  // namespace spineparse::plugins::network
