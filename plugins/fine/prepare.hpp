// fine.prepare — the crop/resample stage that builds the fine network's MR input (spec 4.1).
//
// Inputs:  image float32 [D,H,W] (normalised), norm (optional).
// Outputs: fine_mr float32 [D, 256, 512]: central rows cropped and resized with the same
//          anti-aliased cubic B-spline as the coarse input, not padded. (The original normalises
//          after resizing at test time; normalising first with the raw zero's normalised value as
//          the outside value gives the same numbers.)
// Params:  height, width. Concurrency: parallel (CPU), so it runs for one case while the
//          networks run for others.
//
//   {"id": "crop_resample", "stage": "fine.prepare"}
#pragma once

#include "prepare_options.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::fine {

StageDescription prepare_description();

class Prepare : public StageWith<PrepareOptions> {
 public:
  using StageWith::StageWith;
  CasePtr process(const CasePtr& in) override;
};

}  // namespace spineparse::plugins::fine
