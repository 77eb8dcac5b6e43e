#include "network_stage.hpp"

#include <torch/nn/module.h>
#include <torch/script.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "nn/safetensors.hpp"

namespace spineparse::plugins::network {

using namespace spineparse::nn;  // the library floor this group builds on

NetworkSetup setup_network(const NetworkOptions& o, const StageContext& ctx) {
  set_torch_threads(ctx.total_threads);
  NetworkSetup s;
  s.device = parse_device(o.device);
  std::string requested = o.precision;
  if (o.amp && requested == "auto")
    requested = s.device.is_cuda() ? "fp16" : "bf16";  // the former parameter, kept as an alias
  try {
    s.precision = choose_precision(requested, s.device.is_cuda());
  } catch (const std::exception& e) {
    throw std::runtime_error("node '" + ctx.node_id + "': " + e.what());
  }
  if (ctx.note) {
    ctx.note(NetworkNotes::kPrecision, precision_name(s.precision.precision));
    ctx.note(NetworkNotes::kPrecisionReason, s.precision.reason);
    ctx.note(NetworkNotes::kDevice, s.device.str());
    if (!s.device.is_cuda()) ctx.note(NetworkNotes::kCpu, cpu_features().model);
  }
  s.weights = o.weights;
  if (o.random_weights) {
    if (o.model == "torchscript")
      throw std::runtime_error("random_weights needs a built-in model, not torchscript");
    s.random = true;
    s.weights = "(random weights, seed 0)";
    torch::manual_seed(0);  // the stage builds its network next
    return s;
  }
  if (!std::filesystem::exists(s.weights))
    throw std::runtime_error("weights file " + s.weights + " does not exist");
  if (o.model == "torchscript") {
    s.script = std::make_shared<torch::jit::Module>(torch::jit::load(s.weights, s.device));
    s.script->eval();
  } else {
    s.state = load_safetensors(s.weights).tensors;
  }
  return s;
}

void place(torch::nn::Module& net, const NetworkSetup& setup) {
  net.eval();
  net.to(setup.device);
  if (setup.cpu_bf16()) net.to(torch::kBFloat16);
}

NetworkCall::NetworkCall(const NetworkSetup& setup, const StageContext& ctx,
                         std::mutex* one_at_a_time)
    : ctx_(ctx), cpu_(!setup.device.is_cuda()) {
  if (!cpu_ && one_at_a_time) lock_ = std::unique_lock<std::mutex>(*one_at_a_time);
  refresh();
}

void NetworkCall::refresh() {
  threads_ = cpu_ ? ctx_.threads_now() : ctx_.total_threads;
  set_torch_threads(threads_);
}

void NetworkStage::open(const NetworkOptions& options, const StageContext& context) {
  ctx = context;
  setup = setup_network(options, ctx);
  // Each call holds what it runs on: on the CPU every core of the run (or `cores` of them),
  // alone, with that many intra-op threads; on a GPU that device, leaving the cores to the CPU
  // stages. Measured on a 2-core AMD EPYC (float32, 6 cases, two rounds): holding every core gave
  // 7.70-7.77 s per case end to end, starting with the free cores and growing (ResourceUse
  // min_cores) 8.04-8.43 s, the former per-call thread share 8.56-8.60 s.
  if (ctx.declare) {
    ResourceUse use;
    if (cuda()) {
      use.cores = 0;
      use.device = setup.device.str();
    } else {
      const int cores = static_cast<int>(options.cores);
      use.cores = cores > 0 ? cores : ResourceUse::kAllCores;
    }
    cpu_use = use;
    ctx.declare(use);
  }
  stream = StageStream(setup.device);
  optimize = options.optimize;
}

void record_gflop(Case& c, const StageContext& ctx, double gflop) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", gflop);
  c.set_attr(gflop_attribute(ctx.node_id), buf);
}

torch::Tensor NetworkStage::to_host(const torch::Tensor& t) {
  if (!cuda()) return t;
  auto host = host_buffer(t.sizes(), setup.device);
  host.copy_(t, /*non_blocking=*/true);
  stream.synchronize();
  return host;
}

}  // namespace spineparse::plugins::network
