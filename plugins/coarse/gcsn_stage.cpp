#include "gcsn_stage.hpp"

#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>

#include "network_stage.hpp"

namespace spineparse::plugins::coarse {

StageDescription gcsn_description() {
  StageDescription d = describe<network::GcsnOptions>(
      "Coarse 3-D network (GCSN, gcn_mode 2): logits for 20 classes on the 128x256 grid");
  d.reads = {{"coarse_input", false, "", "float32", "1,1,Dp,h,w"},
             {"coarse_pad", false, "", "int64", "2"}};
  d.writes = {{"coarse_logits", false, "raw logits on the coarse grid", "float32", "C,D,h,w"}};
  d.consumes = {"coarse_input"};
  d.concurrency =
      Concurrency::kParallel;  // CPU: cases side by side (NetworkCall); CUDA: one at a time
  d.resource = "gpu";
  return d;
}

struct GcsnImpl {
  network::NetworkStage stage;
  nn::Gcsn net{nullptr};
  torch::Tensor forward(const torch::Tensor& x);
};

void GcsnStage::open(const StageContext& ctx) {
  auto& stage = impl_->stage;
  stage.open(options_, ctx);
  if (stage.setup.script) return;
  const std::string& model = options_.model;
  // Demo models are narrower; without a state (random_weights) the network is full size.
  impl_->net = nn::Gcsn(model == "gcsn", 20, nn::gcsn_width_of(stage.setup.state));
  const std::string& dw = options_.depthwise;
  stage.depthwise = dw == "planes"    ? nn::Depthwise::kPlanes
                    : dw == "grouped" ? nn::Depthwise::kGrouped
                                      : nn::Depthwise::kAuto;
  stage.install(impl_->net, /*lenient=*/model == "deeplab");
}

// Host work (staging, the copy into the case's array) outside the DeviceScope, device work in it.
CasePtr GcsnStage::run(const CasePtr& in) {
  c10::InferenceMode guard;
  auto input_arr = in->get("coarse_input");
  const std::int64_t* pad = in->get("coarse_pad")->data<std::int64_t>();
  auto& stage = impl_->stage;
  const auto& setup = stage.setup;
  network::NetworkCall call(stage.ctx);
  nn::StageStream::Use on_stream(stage.stream);
  const auto staged = nn::pinned_copy(nn::view_of(*input_arr), setup.device);
  torch::Tensor kept;
  {
    network::DeviceScope on_device(stage);
    auto x = nn::to_device_async(staged, setup.device);
    if (stage.optimized && nn::uses_channels_last(setup.device.is_cuda()))
      x = x.contiguous(torch::MemoryFormat::ChannelsLast3d);
    const torch::Tensor logits = impl_->forward(x);
    // bfloat16 or float16 on the CPU: the copy into the case's array makes it float32 in the same
    // pass (nn::to_ndarray).
    const auto unpadded = logits[0].narrow(1, pad[0], pad[1]);
    const bool reduced =
        unpadded.scalar_type() == torch::kBFloat16 || unpadded.scalar_type() == torch::kHalf;
    kept = !stage.cuda() && reduced ? unpadded : stage.to_host(unpadded.to(torch::kFloat32));
    on_device.finish();
  }
  auto out = in->derive();
  out->set("coarse_logits", nn::to_ndarray(kept));
  if (impl_->net)
    network::record_gflop(
        *out, stage.ctx,
        nn::forward_flops(impl_->net, staged.size(2), staged.size(3), staged.size(4)) / 1e9);
  return out;
}

// logits [1, C, Dp, H, W] of x [1, 1, Dp, H, W] on the device, shape checked.
torch::Tensor GcsnImpl::forward(const torch::Tensor& x) {
  const auto& setup = stage.setup;
  torch::Tensor logits;
  {
    nn::CudaAutocast autocast(setup.cuda_autocast(), setup.autocast_dtype());
    if (setup.script) {
      auto r = setup.script->forward({x});
      if (r.isTuple()) {
        const auto& e = r.toTuple()->elements();
        logits = e[e.size() == 3 ? 1 : 0]
                     .toTensor();  // the original's eval output is (softmax, logits, Z)
      } else {
        logits = r.toTensor();
      }
    } else {
      logits = net->forward(x).logits;
    }
  }
  if (logits.dim() != 5 || logits.size(0) != 1 || logits.size(2) != x.size(2)) {
    std::ostringstream s;
    s << "network output has shape " << logits.sizes() << ", expected [1, C, " << x.size(2)
      << ", H, W]";
    throw std::runtime_error(s.str());
  }
  return logits;
}

}  // namespace spineparse::plugins::coarse

// The stage's class, its members in network_stage.hpp.
template class spineparse::plugins::network::NetworkStageOf<
    spineparse::plugins::network::GcsnOptions, spineparse::plugins::coarse::GcsnImpl>;
