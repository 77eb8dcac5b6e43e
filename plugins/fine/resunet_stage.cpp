#include "resunet_stage.hpp"

#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <mutex>

#include "network_stage.hpp"
#include "nn/int8_calibration.hpp"
#include "slice_batcher.hpp"
#include "spineparse/files.hpp"

namespace spineparse::plugins::fine {

namespace fs = std::filesystem;

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
  // calibrate=true: the int8 activation ranges recorded so far, over this many cases.
  bool calibrating = false;
  std::mutex ranges_mutex;
  std::vector<float> ranges;
  int calibrated_cases = 0;

  void to_int8(const network::ResUNetOptions& o, const std::string& node);
  void auto_int8(const network::ResUNetOptions& o);
  void check_calibration(const network::ResUNetOptions& o, const std::string& node) const;
  torch::Tensor network(const torch::Tensor& img, const torch::Tensor& un) {
    if (stage.setup.script) return stage.setup.script->forward({img, un}).toTensor();
    if (!calibrating) return net->forward(img, un);
    std::lock_guard<std::mutex> lock(ranges_mutex);
    if (ranges.empty()) ranges.assign(static_cast<std::size_t>(nn::int8_activation_points()), 0.f);
    return nn::record_activation_ranges(net, img, un, ranges);
  }

  // Slices [n,1,h,w] and [n,C,h',w'] (host) -> softmax [n,C,h,w] on the device: staged on the
  // host, then run in a DeviceScope, finished when this returns.
  torch::Tensor forward(const torch::Tensor& image, const torch::Tensor& unary_batch) {
    return forward(image, unary_batch, [](const torch::Tensor& logits) {
      return torch::softmax(logits.to(torch::kFloat32), 1);
    });
  }
  // The same with `finish` (logits [n,C,h,w] -> its result) in place of the softmax.
  template <class Finish>
  torch::Tensor forward(const torch::Tensor& image, const torch::Tensor& unary_batch,
                        const Finish& finish) {
    const auto& setup = stage.setup;
    const auto image_staged = nn::pinned_copy(image, setup.device);
    const auto unary_staged = nn::pinned_copy(unary_batch, setup.device);
    network::DeviceScope on_device(stage);
    auto img = nn::to_device_async(image_staged, setup.device);
    auto un = nn::to_device_async(unary_staged, setup.device);
    if (stage.optimized && nn::uses_channels_last(stage.cuda()))
      un = un.contiguous(torch::MemoryFormat::ChannelsLast);
    auto out = finish(network(img, un));
    on_device.finish();
    return out;
  }

  // The case's slices batch_size at a time -> probabilities [C,D,h,w]: on the CPU the softmax
  // written straight into `host` (the case's field itself), on CUDA into a device tensor.
  torch::Tensor by_batches(const torch::Tensor& images, const torch::Tensor& unaries,
                           network::NetworkCall& call, std::shared_ptr<NdArray>& host) {
    const std::int64_t D = images.size(0), bs = batch_size;
    torch::Tensor probs;
    for (std::int64_t j = 0; j < D; j += bs) {
      if (j > 0) call.refresh();
      const std::int64_t n = std::min(bs, D - j);
      const auto image = images.narrow(0, j, n).contiguous();
      const auto unary = unaries.narrow(0, j, n).contiguous();
      if (!stage.cuda()) {
        forward(image, unary, [&](const torch::Tensor& logits) {
          if (!probs.defined()) {
            host = NdArray::make<float>({logits.size(1), D, logits.size(2), logits.size(3)});
            probs = nn::view_of(*host);
          }
          nn::softmax_into_planes(logits, probs, j);
          return torch::Tensor();
        });
        continue;
      }
      auto sm = forward(image, unary);
      if (!probs.defined())
        probs = torch::empty({sm.size(1), D, sm.size(2), sm.size(3)}, sm.options());
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
  impl_->auto_int8(o);
  impl_->check_calibration(o, ctx.node_id);
  if (stage.setup.script) return;
  // Demo models are narrower; without a state (random_weights) the network is full size.
  impl_->net = nn::ResUNet2d(21, 20, nn::resunet_fmaps_of(stage.setup.state));
  stage.install(impl_->net);
  if (stage.setup.precision.precision == nn::Precision::kInt8) impl_->to_int8(o, ctx.node_id);
  impl_->calibrating = o.calibrate;
}

// precision=auto on the CPU takes int8 when the weights record a calibration whose labels agreed
// with fp32 on >= 99.9 % of voxels (and the fused network can run it).
void ResUNetImpl::auto_int8(const network::ResUNetOptions& o) {
  const auto it = stage.setup.metadata.find(nn::kInt8CalibrationKey);
  if (o.precision != "auto" || o.amp || o.calibrate || stage.cuda() || stage.setup.script ||
      !o.optimize || !nn::has_fused_onednn() || it == stage.setup.metadata.end())
    return;
  const auto cal = nn::Int8Calibration::from_json(it->second, o.weights);
  if (std::isnan(cal.agreement) || cal.agreement < 0.999) return;
  stage.setup.precision = {nn::Precision::kInt8,
                           "auto: the weights record an int8 calibration whose labels agreed "
                           "with fp32's on >= 99.9 % of voxels"};
  if (stage.ctx.note) stage.ctx.note(network::NetworkNotes::kPrecision, "int8");
}

// What int8 and calibration need: a built-in network, optimize on, on the CPU (the fused
// float32 network), float32 for calibration.
void ResUNetImpl::check_calibration(const network::ResUNetOptions& o,
                                    const std::string& node) const {
  const bool int8 = stage.setup.precision.precision == nn::Precision::kInt8;
  if (!int8 && !o.calibrate) return;
  const std::string what = int8 ? "precision=int8" : "calibrate=true";
  auto refuse = [&](const std::string& why) {
    throw std::runtime_error("node '" + node + "': " + what + " " + why);
  };
  if (stage.setup.script) refuse("needs the built-in ResUNet2D, not model=torchscript");
  if (!o.optimize) refuse("needs optimize=true (the fused oneDNN network)");
  if (!nn::has_fused_onednn()) refuse("needs oneDNN's own API (libdnnl-dev) at build time");
  if (o.calibrate && stage.setup.precision.precision != nn::Precision::kFloat32)
    refuse("records float32 activations: set precision=fp32");
  if (o.calibrate && int8) refuse("and precision=int8 exclude each other");
}

void ResUNetImpl::to_int8(const network::ResUNetOptions& o, const std::string& node) {
  try {
    const auto cal = nn::Int8Calibration::of_weights(stage.setup.metadata, o.weights);
    nn::use_int8(net, cal.ranges);
    std::string reason =
        stage.setup.precision.reason + "; ranges from " + std::to_string(cal.cases) + " cases";
    if (!std::isnan(cal.agreement))
      reason += "; labels agreed with fp32 on " + std::to_string(100 * cal.agreement) + " % of " +
                "voxels over " + std::to_string(cal.checked_cases) + " cases";
    if (stage.ctx.note) stage.ctx.note(network::NetworkNotes::kPrecisionReason, reason);
  } catch (const std::exception& e) {
    throw std::runtime_error("node '" + node + "': precision=int8: " + e.what());
  }
}

void ResUNetStage::after_run(const std::string&, const StageContext& ctx) {
  if (!impl_->calibrating) return;
  std::lock_guard<std::mutex> lock(impl_->ranges_mutex);
  nn::Int8Calibration cal;
  cal.ranges = impl_->ranges;
  cal.cases = impl_->calibrated_cases;
  const auto path = fs::path(ctx.output_dir) / "calibration" / "int8_ranges.json";
  fs::create_directories(path.parent_path());
  write_file_atomic(path.string(), cal.to_json() + "\n");
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
  if (impl_->calibrating) {
    std::lock_guard<std::mutex> lock(impl_->ranges_mutex);
    ++impl_->calibrated_cases;
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
