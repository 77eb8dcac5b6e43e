// What the network stages (coarse.gcsn, fine.resunet) share: their common parameters, loading the
// weights, placing the network on its device, the device lock and stream, the thread share of a
// call, and copying results back to the host. Included only by network stage sources (LibTorch).
#pragma once

#include <torch/types.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "network_options.hpp"
#include "nn/networks.hpp"
#include "nn/precision.hpp"
#include "nn/torch_util.hpp"
#include "spineparse/stage.hpp"

namespace torch::jit {
struct Module;
}

namespace spineparse::plugins::network {

// The library's network code (spineparse::nn) this floor builds on.
using nn::load_state;
using nn::optimize_for_inference;
using nn::Precision;
using nn::PrecisionChoice;
using nn::StageStream;

// What a network stage's open() does: thread count, device, precision, and its weights file,
// either a TorchScript module (model == "torchscript") or a safetensors state dict that the stage
// loads into its own network, as the NetworkOptions say.
struct NetworkSetup {
  torch::Device device{torch::kCPU};
  PrecisionChoice precision;  // what the network runs in, and why (see nn/precision.hpp)
  std::string weights;
  std::shared_ptr<torch::jit::Module> script;
  std::map<std::string, torch::Tensor> state;
  // random_weights=true (benchmarking only): no file is read; the stage keeps the full-size
  // network's seeded default initialisation. The segmentation is meaningless, the timing is not.
  bool random = false;

  // Built-in networks on the CPU in bfloat16: weights converted when placed, inputs converted
  // by the network, logits returned in float32.
  bool cpu_bf16() const { return !device.is_cuda() && precision.precision == Precision::kBFloat16; }
  // CUDA autocast (float16 or bfloat16) around every forward pass.
  bool cuda_autocast() const {
    return device.is_cuda() && precision.precision != Precision::kFloat32;
  }
  torch::ScalarType autocast_dtype() const {
    return precision.precision == Precision::kBFloat16 ? torch::kBFloat16 : torch::kHalf;
  }
};
// The parameters of the network stages' descriptions that every network stage shares.
NetworkSetup setup_network(const NetworkOptions& options, const StageContext& ctx);

// Puts a loaded network in inference form on the setup's device (bfloat16 weights on the CPU
// with precision bf16).
void place(torch::nn::Module& net, const NetworkSetup& setup);

// The parameters every network stage has besides `model`: weights (required), device, precision,
// amp (alias), optimize, random_weights.
// One call of a network stage. On CUDA calls run one at a time (the stage's stream and its
// batches); on the CPU each call holds every core of the run alone (the stage declares
// ResourceUse kAllCores in open(), the executor grants it) with that many intra-op threads
// (StageContext::threads_now); outside the executor, every thread of the context. refresh() asks
// again; long calls call it between steps.
class NetworkCall {
 public:
  // one_at_a_time: locked for the call on CUDA (nullptr: the caller serialises device work).
  NetworkCall(const NetworkSetup& setup, const StageContext& ctx, std::mutex* one_at_a_time);
  void refresh();
  int threads() const { return threads_; }

 private:
  std::unique_lock<std::mutex> lock_;
  const StageContext& ctx_;
  bool cpu_;
  int threads_ = 0;
};

// Records the floating-point work of a case's forward passes (nn::forward_flops, built-in
// networks) as the case attribute gflop_attribute(node id), for bench's achieved GFLOP/s.
void record_gflop(Case& c, const StageContext& ctx, double gflop);

// A network stage's state after open(): the setup, its stream and device lock, and the context.
// install() finishes a stage's own network: weights loaded (unless random), placed on the device,
// rewritten for inference when `optimize` is on; the state dict is then freed.
struct NetworkStage {
  NetworkSetup setup;
  StageContext ctx;
  StageStream stream;       // its own CUDA stream (nothing on the CPU)
  std::mutex device_mutex;  // CUDA: one call at a time on the stream
  bool optimize = false;    // NetworkOptions::optimize
  ResourceUse cpu_use;      // what each call holds (declared in open(); NetworkOptions::cores)
  bool optimized = false;   // install() applied optimize_for_inference

  void open(const NetworkOptions& options, const StageContext& context);
  bool cuda() const { return setup.device.is_cuda(); }

  template <class Net>
  void install(Net& net, bool lenient = false) {
    if (!setup.random) load_state(*net, setup.state, setup.weights, lenient);
    place(*net, setup);
    optimized = optimize;
    if (optimized) optimize_for_inference(net, cuda());
    setup.state.clear();
  }

  // The result on the host: on CUDA through a page-locked buffer after the stream finishes; on
  // the CPU the tensor itself.
  torch::Tensor to_host(const torch::Tensor& t);
};

}  // namespace spineparse::plugins::network
