#include "gcsn_stage.hpp"

#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>

#include "networks.hpp"
#include "safetensors.hpp"
#include "torch_util.hpp"

namespace spineparse::coarse {

StageDescription gcsn_description() {
  StageDescription d;
  d.kind = "coarse.gcsn";
  d.summary = "Coarse 3-D network (GCSN, gcn_mode 2): logits for 20 classes on the 128x256 grid";
  d.params = {
      {"weights", ParamType::kPath, std::nullopt, true, "safetensors state dict (or TorchScript file for model=torchscript)"},
      {"model", ParamType::kString, ParamValue(std::string("gcsn")), false,
       "gcsn; deeplab (the pretraining network without the graph module); torchscript (custom network, same contract)",
       {"gcsn", "deeplab", "torchscript"}},
      {"device", ParamType::kString, ParamValue(std::string("auto")), false, "cpu, cuda, cuda:N or auto"},
      {"amp", ParamType::kBool, ParamValue(false), false, "mixed precision (bfloat16 on CPU, float16 on CUDA)"},
      nn::optimize_param(),
      nn::random_weights_param(),
  };
  d.reads = {{"coarse_input"}, {"coarse_pad"}};
  d.writes = {{"coarse_logits", false, "float32 [20,D,128,256] raw logits"}};
  d.consumes = {"coarse_input"};
  d.concurrency = Concurrency::kParallel;  // CPU: cases side by side (NetworkCall); CUDA: one at a time
  d.resource = "gpu";
  return d;
}

struct GcsnStage::Impl {
  nn::NetworkSetup setup;
  bool optimized = false;
  nn::StageStream stream;  // its own CUDA stream (nothing on CPU)
  std::mutex device_mutex;  // CUDA: one call at a time on the stream
  StageContext ctx;
  nn::Gcsn net{nullptr};
};

GcsnStage::GcsnStage(const Params& p) : params_(p), impl_(std::make_unique<Impl>()) {}
GcsnStage::~GcsnStage() = default;

void GcsnStage::open(const StageContext& ctx) {
  impl_->ctx = ctx;
  impl_->setup = nn::setup_network(params_, ctx);
  impl_->stream = nn::StageStream(impl_->setup.device);
  if (impl_->setup.script) return;
  const std::string model = params_.get_string("model");
  const auto& state = impl_->setup.state;
  impl_->net = nn::Gcsn(model == "gcsn", 20, nn::gcsn_width_of(state));  // demo models are narrower; no state (random_weights): full size
  if (!impl_->setup.random) nn::load_state(*impl_->net, state, impl_->setup.weights, model == "deeplab");
  nn::place(*impl_->net, impl_->setup);
  impl_->optimized = params_.get_bool("optimize");
  if (impl_->optimized) nn::optimize_for_inference(impl_->net, impl_->setup.device.is_cuda());
  impl_->setup.state.clear();
}

CasePtr GcsnStage::process(const CasePtr& in) {
  c10::InferenceMode guard;
  auto input_arr = in->get("coarse_input");
  const std::int64_t* pad = in->get("coarse_pad")->data<std::int64_t>();
  const auto& setup = impl_->setup;
  nn::NetworkCall call(setup, impl_->ctx, &impl_->device_mutex);
  nn::StageStream::Use on_stream(impl_->stream);
  auto x = nn::to_device_async(nn::view_of(*input_arr), setup.device);
  if (impl_->optimized && nn::uses_channels_last(setup.device.is_cuda())) x = x.contiguous(torch::MemoryFormat::ChannelsLast3d);
  torch::Tensor logits;
  {
    nn::CudaAutocast autocast(setup.amp && setup.device.is_cuda());
    if (setup.script) {
      auto r = setup.script->forward({x});
      if (r.isTuple()) {
        const auto& e = r.toTuple()->elements();
        logits = e[e.size() == 3 ? 1 : 0].toTensor();  // the original's eval output is (softmax, logits, Z)
      } else {
        logits = r.toTensor();
      }
    } else if (setup.amp && !setup.device.is_cuda()) {
      logits = impl_->net->forward(x.to(torch::kBFloat16)).logits;  // weights converted at open()
    } else {
      logits = impl_->net->forward(x).logits;
    }
  }
  if (logits.dim() != 5 || logits.size(0) != 1 || logits.size(2) != x.size(2)) {
    std::ostringstream s;
    s << "network output has shape " << logits.sizes() << ", expected [1, C, " << x.size(2) << ", H, W]";
    throw std::runtime_error(s.str());
  }
  auto kept = logits[0].narrow(1, pad[0], pad[1]).to(torch::kFloat32);
  if (setup.device.is_cuda()) {
    auto host = nn::host_buffer(kept.sizes(), setup.device);
    host.copy_(kept, /*non_blocking=*/true);
    impl_->stream.synchronize();
    kept = host;
  }
  auto out = in->derive();
  out->set("coarse_logits", nn::to_ndarray(kept));
  out->erase("coarse_input");  // no longer needed: keeps memory per case in flight low
  return out;
}

}  // namespace spineparse::coarse
