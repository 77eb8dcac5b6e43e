// coarse.gcsn — runs the coarse network (GCSN, spec 3) and keeps its logits.
//
// Inputs:  coarse_input float32 [1,1,Dp,128,256], coarse_pad int64 [2].
// Outputs: coarse_logits float32 [20, D, 128, 256]: raw logits (the fine network's input, spec
//          4.1), slice padding removed.
// Params:  weights (safetensors, or a TorchScript file with model=torchscript), model
//          (gcsn | deeplab | torchscript), device (cpu | cuda | cuda:N | auto), precision (auto |
//          fp32 | bf16 | fp16, nn/precision.hpp; recorded in run.json's "nodes").
// Errors:  weights that do not fit the network stop the run at open(), listing every mismatch.
// Concurrency: parallel on the CPU (each call holds every core, see network::NetworkCall); on
//          CUDA the device work of one call at a time on the stage's stream (DeviceScope), the
//          staging and copies out of other calls beside it.
//
//   {"id": "coarse", "stage": "coarse.gcsn", "params": {"weights": "gcsn.safetensors", "device":
//   "auto"}}
#pragma once

#include "network_options.hpp"
#include "network_stage_of.hpp"

namespace spineparse::plugins::coarse {

StageDescription gcsn_description();

struct GcsnImpl;  // the network and its state (gcsn_stage.cpp)

class GcsnStage : public network::NetworkStageOf<network::GcsnOptions, GcsnImpl> {
 public:
  using NetworkStageOf::NetworkStageOf;
  void open(const StageContext& ctx) override;

 private:
  CasePtr run(const CasePtr& in) override;
};

}  // namespace spineparse::plugins::coarse
