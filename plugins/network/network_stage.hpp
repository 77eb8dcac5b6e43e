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
#include "network_stage_of.hpp"
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
  std::map<std::string, std::string> metadata;  // the safetensors file's
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

// The intra-op threads of one call of a network stage: on the CPU each call holds every core of
// the run alone (the stage declares ResourceUse kAllCores in open(), the executor grants it) and
// uses that many; on CUDA the call holds no core, so its host work uses one thread; outside the
// executor, every thread of the context (StageContext::threads_now). refresh() asks again; long
// calls call it between steps.
class NetworkCall {
 public:
  explicit NetworkCall(const StageContext& ctx);
  void refresh();
  int threads() const { return threads_; }

 private:
  const StageContext& ctx_;
  int threads_ = 0;
};

// What each call of a network stage holds: on the CPU every core of the run (or `cores` of
// them), alone, with that many intra-op threads; on a GPU that device, only inside its
// DeviceScopes, leaving the cores to the CPU stages. Measured on a 2-core AMD EPYC (float32, 6
// cases, two rounds): holding every core gave 7.70-7.77 s per case end to end, starting with the
// free cores and growing (ResourceUse min_cores) 8.04-8.43 s, the former per-call thread share
// 8.56-8.60 s. min_cores > 0: elastic (ResourceUse::min_cores), at most `cores`.
ResourceUse resource_use(const torch::Device& device, std::int64_t cores,
                         std::int64_t min_cores = 0);

// Records the floating-point work of a case's forward passes (nn::forward_flops, built-in
// networks) as the case attribute gflop_attribute(node id), for bench's achieved GFLOP/s.
void record_gflop(Case& c, const StageContext& ctx, double gflop);

struct NetworkStage;

// One stretch of a CUDA call's device work: the device granted by the executor (the stage
// declares device_in_scopes; StageContext::hold_device) and the stage's own lock (the same rule
// outside the executor), on the stage's stream. finish() waits for the stream, so the time the
// device is held is the time it works; the staging of inputs and the copies of results into the
// case's arrays happen outside, while other calls use the device. Nothing on the CPU.
class DeviceScope {
 public:
  explicit DeviceScope(NetworkStage& stage);
  void finish();  // waits for the stream and gives the device back (the destructor only gives)

 private:
  NetworkStage* stage_ = nullptr;
  std::shared_ptr<void> held_;
  std::unique_lock<std::mutex> lock_;
};

// A network stage's state after open(): the setup, its stream and device lock, and the context.
// install() finishes a stage's own network: weights loaded (unless random), placed on the device,
// rewritten for inference when `optimize` is on; the state dict is then freed.
struct NetworkStage {
  NetworkSetup setup;
  StageContext ctx;
  StageStream stream;       // its own CUDA stream (nothing on the CPU)
  std::mutex device_mutex;  // CUDA: one DeviceScope at a time on the stream
  bool optimize = false;    // NetworkOptions::optimize
  ResourceUse cpu_use;      // what each call holds (resource_use(), declared in open())
  bool optimized = false;   // install() applied optimize_for_inference
  nn::Depthwise depthwise = nn::Depthwise::kAuto;  // the GCSN's choice, for install()

  void open(const NetworkOptions& options, const StageContext& context);
  bool cuda() const { return setup.device.is_cuda(); }

  template <class Net>
  void install(Net& net, bool lenient = false) {
    if (!setup.random) load_state(*net, setup.state, setup.weights, lenient);
    place(*net, setup);
    optimized = optimize;
    if (optimized) optimize_for_inference(net, cuda(), depthwise);
    setup.state.clear();
    placed();
  }

  // The result on the host, inside a DeviceScope: on CUDA a page-locked copy queued on the
  // stream (valid after DeviceScope::finish()); on the CPU the tensor itself.
  torch::Tensor to_host(const torch::Tensor& t);

  // At the stage's close(): on CUDA, the page-locked staging blocks go back to the system.
  void close();

  // A CUDA error that leaves the device unusable (nn::is_sticky_device_error) becomes StopRun
  // naming the device, so the run stops instead of failing every later case; any other error
  // returns for the caller to rethrow.
  void stop_if_device_lost(const std::exception& e) const;
  // A stage's process() body under that rule.
  template <class Body>
  CasePtr guarded(Body&& body) const {
    try {
      return body();
    } catch (const std::exception& e) {
      stop_if_device_lost(e);
      throw;
    }
  }

 private:
  void placed();  // CUDA: waits for the weights' copies before the first call's stream uses them
};

template <class Options, class Impl>
NetworkStageOf<Options, Impl>::NetworkStageOf(const Params& p)
    : StageWith<Options>(p), impl_(std::make_unique<Impl>()) {}

template <class Options, class Impl>
NetworkStageOf<Options, Impl>::~NetworkStageOf() = default;

template <class Options, class Impl>
CasePtr NetworkStageOf<Options, Impl>::process(const CasePtr& in) {
  return impl_->stage.guarded([&] { return run(in); });
}

template <class Options, class Impl>
void NetworkStageOf<Options, Impl>::close() {
  impl_->stage.close();
}

}  // namespace spineparse::plugins::network
