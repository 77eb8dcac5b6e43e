#include "resunet_stage.hpp"

#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>

#include "network_stage.hpp"
#include "slice_batcher.hpp"

namespace spineparse::plugins::fine {

StageDescription resunet_description() {
  StageDescription d = describe<network::ResUNetOptions>(
      "Fine 2-D network (ResUNet2D): per-slice softmax on the 256x512 grid from the MR and the "
      "coarse logits");
  d.reads = {{"fine_mr", false, "", "float32", "D,h,w"},
             {"coarse_logits", false, "", "float32", "C,D,h,w"}};
  d.writes = {{"fine_probs", false, "softmax on the fine grid", "float32", "C,D,h,w"}};
  d.consumes = {"fine_mr"};
  d.concurrency =
      Concurrency::kParallel;  // CPU: cases side by side (NetworkCall); CUDA: one at a time
  d.resource = "gpu";
  return d;
}

StageAttributes resunet_attributes() {
  StageAttributes a = network::network_attributes();
  a.writes.push_back({"fine_passes", true, "forward passes (slices shared between cases)"});
  a.writes.push_back({"fine_shared_passes", true, "of those, passes shared with other cases"});
  return a;
}

struct ResUNetImpl {
  network::NetworkStage stage;
  std::int64_t batch_size = 1;
  std::unique_ptr<SliceBatcher> batcher;  // slices of concurrent cases share passes
  nn::ResUNet2d net{nullptr};

  // Slices [n,1,h,w] and [n,C,h',w'] (host) -> softmax [n,C,h,w] on the device: staged on the
  // host, then run in a DeviceScope, finished when this returns.
  torch::Tensor forward(const torch::Tensor& image, const torch::Tensor& unary_batch) {
    const auto& setup = stage.setup;
    const auto image_staged = nn::pinned_copy(image, setup.device);
    const auto unary_staged = nn::pinned_copy(unary_batch, setup.device);
    network::DeviceScope on_device(stage);
    auto img = nn::to_device_async(image_staged, setup.device);
    auto un = nn::to_device_async(unary_staged, setup.device);
    if (stage.optimized && nn::uses_channels_last(stage.cuda()))
      un = un.contiguous(torch::MemoryFormat::ChannelsLast);
    torch::Tensor logits =
        setup.script ? setup.script->forward({img, un}).toTensor() : net->forward(img, un);
    auto probs = torch::softmax(logits.to(torch::kFloat32), 1);
    on_device.finish();
    return probs;
  }

  // The case's slices batch_size at a time -> probabilities [C,D,h,w]: on the CPU written into
  // `host` (the case's field itself, no copy at the end), on CUDA into a device tensor.
  torch::Tensor by_batches(const torch::Tensor& images, const torch::Tensor& unaries,
                           network::NetworkCall& call, std::shared_ptr<NdArray>& host) {
    const std::int64_t D = images.size(0), bs = batch_size;
    torch::Tensor probs;
    for (std::int64_t j = 0; j < D; j += bs) {
      if (j > 0) call.refresh();
      const std::int64_t n = std::min(bs, D - j);
      auto sm = forward(images.narrow(0, j, n).contiguous(), unaries.narrow(0, j, n).contiguous());
      if (!probs.defined() && stage.cuda())
        probs = torch::empty({sm.size(1), D, sm.size(2), sm.size(3)}, sm.options());
      if (!probs.defined()) {
        host = NdArray::make<float>({sm.size(1), D, sm.size(2), sm.size(3)});
        probs = nn::view_of(*host);
      }
      probs.narrow(1, j, n).copy_(sm.permute({1, 0, 2, 3}));
    }
    return probs;
  }
};

void ResUNetStage::open(const StageContext& ctx) {
  auto& stage = impl_->stage;
  const network::ResUNetOptions& o = options_;
  stage.open(o, ctx);
  const bool cuda = stage.cuda();
  impl_->batch_size = o.batch_size > 0 ? o.batch_size : cuda ? 16 : 1;
  if (o.batch_across_cases == "on" || (o.batch_across_cases == "auto" && cuda)) {
    impl_->batcher = std::make_unique<SliceBatcher>(impl_->batch_size, o.batch_wait_ms);
    // Its calls hold the stage's cores or device together: the batcher runs one pass at a time.
    if (ctx.declare) {
      ResourceUse use = stage.cpu_use;
      use.shared_by_node = true;
      ctx.declare(use);
    }
  }
  if (stage.setup.script) return;
  // Demo models are narrower; without a state (random_weights) the network is full size.
  impl_->net = nn::ResUNet2d(21, 20, nn::resunet_fmaps_of(stage.setup.state));
  stage.install(impl_->net);
}

CasePtr ResUNetStage::run(const CasePtr& in) {
  c10::InferenceMode guard;
  auto mr_arr = in->get("fine_mr");
  auto lg_arr = in->get("coarse_logits");
  auto mr = nn::view_of(*mr_arr);     // [D,h,w]
  auto unary = nn::view_of(*lg_arr);  // [20,D,h',w']
  const std::int64_t D = mr.size(0);
  if (unary.dim() != 4 || unary.size(1) != D) {
    throw std::runtime_error("coarse_logits has " + std::to_string(unary.size(1)) +
                             " slices, fine_mr " + std::to_string(D));
  }
  auto& stage = impl_->stage;
  const auto& setup = stage.setup;
  auto images = mr.unsqueeze(1);               // [D,1,h,w]
  auto unaries = unary.permute({1, 0, 2, 3});  // [D,C,h',w']
  network::NetworkCall call(stage.ctx);
  nn::StageStream::Use on_stream(stage.stream);
  nn::CudaAutocast autocast(setup.cuda_autocast(), setup.autocast_dtype());
  torch::Tensor probs;                  // [C,D,h,w]
  std::shared_ptr<NdArray> host_probs;  // CPU: the case's field, written in place
  auto out = in->derive();
  if (impl_->batcher) {
    auto r = impl_->batcher->run(
        images, unaries,
        [this](const torch::Tensor& i, const torch::Tensor& u) { return impl_->forward(i, u); });
    probs = r.out;
    out->set_attr("fine_passes", std::to_string(r.passes));
    out->set_attr("fine_shared_passes", std::to_string(r.shared_passes));
  } else {
    probs = impl_->by_batches(images, unaries, call, host_probs);
  }
  if (stage.cuda()) {  // the copy to the host on the device, then the case's array without it
    network::DeviceScope on_device(stage);
    probs = stage.to_host(probs);
    on_device.finish();
  }
  if (impl_->net)
    network::record_gflop(*out, stage.ctx,
                          D * nn::forward_flops(impl_->net, mr.size(1), mr.size(2)) / 1e9);
  out->set("fine_probs", host_probs ? host_probs : nn::to_ndarray(probs));
  return out;
}

}  // namespace spineparse::plugins::fine

// The stage's class, its members in network_stage.hpp.
template class spineparse::plugins::network::NetworkStageOf<
    spineparse::plugins::network::ResUNetOptions, spineparse::plugins::fine::ResUNetImpl>;
