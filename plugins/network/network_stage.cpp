#include "network_stage.hpp"

#include <ATen/Context.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/nn/module.h>
#include <torch/script.h>

#include <algorithm>
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
  if (s.device.is_cuda()) {
    try {
      set_tf32(o.tf32);  // off: fp32 is float32, as the reference is
    } catch (const std::exception& e) {
      throw std::runtime_error("node '" + ctx.node_id + "': " + e.what());
    }
    // The grids are fixed (128 x 256, 256 x 512) and slice counts repeat across a cohort: let
    // cuDNN time its algorithms once per shape.
    at::globalContext().setBenchmarkCuDNN(true);
  }
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
    if (s.device.is_cuda()) ctx.note(NetworkNotes::kTf32, o.tf32 ? "on" : "off");
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
    auto file = load_safetensors(s.weights);
    s.state = std::move(file.tensors);
    s.metadata = std::move(file.metadata);
  }
  return s;
}

void place(torch::nn::Module& net, const NetworkSetup& setup) {
  net.eval();
  net.to(setup.device);
  if (setup.cpu_bf16()) net.to(torch::kBFloat16);
  for (auto& p : net.parameters(/*recurse=*/true)) p.set_requires_grad(false);
}

NetworkCall::NetworkCall(const StageContext& ctx) : ctx_(ctx) { refresh(); }

void NetworkCall::refresh() {
  threads_ = ctx_.threads_now();
  set_torch_threads(threads_);
}

DeviceScope::DeviceScope(NetworkStage& stage) {
  if (!stage.cuda()) return;
  stage_ = &stage;
  if (stage.ctx.hold_device) held_ = stage.ctx.hold_device();
  lock_ = std::unique_lock<std::mutex>(stage.device_mutex);
}

void DeviceScope::finish() {
  if (!stage_) return;
  stage_->stream.synchronize();
  lock_ = {};
  held_.reset();
  stage_ = nullptr;
}

void NetworkStage::placed() {
  if (!cuda()) return;
  // install() copied the weights on the device's default stream; the calls run on `stream`.
  const auto* impl = c10::impl::getDeviceGuardImpl(setup.device.type());
  impl->synchronizeStream(impl->getDefaultStream(setup.device));
}

void NetworkStage::close() {
  if (cuda()) release_pinned_cache();
}

void NetworkStage::stop_if_device_lost(const std::exception& e) const {
  if (!cuda() || !is_sticky_device_error(e.what())) return;
  std::string first = e.what();
  first = first.substr(0, first.find('\n'));
  throw StopRun(setup.device.str() + " is in an unrecoverable state (" + first +
                "); no later case can run on it in this process");
}

void NetworkStage::open(const NetworkOptions& options, const StageContext& context) {
  ctx = context;
  if (options.cores > 0 && options.min_cores > options.cores)
    throw std::invalid_argument("min_cores (" + std::to_string(options.min_cores) +
                                ") is more than cores (" + std::to_string(options.cores) + ")");
  setup = setup_network(options, ctx);
  cpu_use = resource_use(setup.device, options.cores, options.min_cores);
  if (ctx.declare) ctx.declare(cpu_use);
  stream = StageStream(setup.device);
  optimize = options.optimize;
}

ResourceUse resource_use(const torch::Device& device, std::int64_t cores, std::int64_t min_cores) {
  ResourceUse use;
  if (device.is_cuda()) {  // the device only for the device work (DeviceScope)
    use.cores = 0;
    use.device = device.str();
    use.device_in_scopes = true;
  } else {
    use.cores = cores > 0 ? static_cast<int>(cores) : ResourceUse::kAllCores;
    if (min_cores > 0)
      use.min_cores = static_cast<int>(cores > 0 ? std::min(min_cores, cores) : min_cores);
  }
  return use;
}

void record_gflop(Case& c, const StageContext& ctx, double gflop) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", gflop);
  c.set_attr(gflop_attribute(ctx.node_id), buf);
}

torch::Tensor NetworkStage::to_host(const torch::Tensor& t) {
  if (!cuda()) return t;
  auto host = torch::empty(t.sizes(), t.options().device(torch::kCPU).pinned_memory(true));
  host.copy_(t, /*non_blocking=*/true);
  return host;
}

}  // namespace spineparse::plugins::network
