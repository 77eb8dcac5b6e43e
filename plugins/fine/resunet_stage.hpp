// fine.resunet — the fine network (ResUNet2D, spec 4) over every slice of a case.
//
// Inputs:  fine_mr float32 [D,256,512], coarse_logits float32 [20,D,128,256].
// Outputs: fine_probs float32 [20, D, 256, 512]: softmax of the network per slice (the network
//          upsamples the logits bilinearly inside and concatenates [MR, logits], spec 4.1).
// Params:  weights, model (resunet2d | torchscript), device, batch_size (slices per forward,
//          0: 1 on the CPU, 16 on CUDA; BatchNorm runs in inference form, so batching does not
//          change results), precision (as coarse.gcsn, and int8 on the CPU with the activation
//          ranges the weights file records), calibrate (record those ranges: fp32, CPU;
//          OUTPUT/calibration/int8_ranges.json).
//          batch_across_cases (auto: on for CUDA): slices of the cases in the stage at once share
//          forward passes (SliceBatcher), batch_wait_ms.
// Concurrency: parallel. On the CPU cases run side by side, each holding every core
//          (network::NetworkCall); on CUDA one pass at a time on the stage's stream, the device
//          held only for the passes and the copy out (network::DeviceScope).
//
//   {"id": "fine", "stage": "fine.resunet", "params": {"weights": "resunet2d.safetensors"}}
#pragma once

#include "network_options.hpp"
#include "network_stage_of.hpp"

namespace spineparse::plugins::fine {

StageDescription resunet_description();
StageAttributes resunet_attributes();

struct ResUNetImpl;  // the network, its batcher and state (resunet_stage.cpp)

class ResUNetStage : public network::NetworkStageOf<network::ResUNetOptions, ResUNetImpl> {
 public:
  using NetworkStageOf::NetworkStageOf;
  void open(const StageContext& ctx) override;
  // calibrate=true: writes OUTPUT/calibration/int8_ranges.json (nn::Int8Calibration).
  void after_run(const std::string& run_json_path, const StageContext& ctx) override;

 private:
  CasePtr run(const CasePtr& in) override;
};

}  // namespace spineparse::plugins::fine
