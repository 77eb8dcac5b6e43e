// fine.to_raw — maps the fine result back to the raw grid (spec 4.3) and takes the labels.
//
// Inputs:  fine_probs float32 [20, D, h, w]; image (for the raw size H x W).
// Outputs: labels uint8 [D, H, W]: per slice the probabilities are resampled with bilinear
//          align_corners=True (the original's trilinear with D unchanged) to the central rows
//          [floor(H/4), H - floor(H/4)) and argmax is taken; rows outside are background.
//          probabilities float32 [20, D, H, W] only when keep_probabilities is set (it is large:
//          about 750 MB for 880 x 880 x 12); label_probability uint8 [D, H, W], 255 x the chosen
//          label's probability (the softmax's maximum), when label_probability is set (metrics.qc
//          reads and consumes it).
// Any H works: the crop height is H - 2 floor(H/4) (the original breaks for H % 4 != 0).
// Concurrency: parallel.
//
//   {"id": "to_raw", "stage": "fine.to_raw"}
#pragma once

#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::fine {

struct ToRawOptions {
  static constexpr const char* kKind = "fine.to_raw";
  bool keep_probabilities = false;
  bool label_probability = true;
  static void declare(ParamSet<ToRawOptions>& s);
};
StageDescription to_raw_description();

class ToRaw : public StageWith<ToRawOptions> {
 public:
  using StageWith::StageWith;
  CasePtr process(const CasePtr& in) override;
};

}  // namespace spineparse::plugins::fine
