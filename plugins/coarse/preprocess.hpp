// coarse.preprocess — builds the GCSN input exactly as the original (spec 2.1).
//
// Inputs:  image  float32 [D,H,W] (normalised by io.normalise),
//          norm   float64 [2] {offset, scale} (optional: without it the image is taken as raw).
// Outputs: coarse_input float32 [1, 1, max(D, 18), 128, 256]: central rows
//          [floor(H/4), H - floor(H/4)) cropped, anti-aliased cubic B-spline resize with
//          scikit-image's conventions, slices padded to 18 (ceil(delta/2) before) with the
//          normalised value of a raw zero (-466/379 by default), as the original pads before
//          normalising; coarse_pad int64 [2] = {slices padded before, original slices}.
// Params:  height, width (the network's input grid), min_slices (pad target).
// Any H works (not only multiples of 4) and D > 18 is kept unpadded. Concurrency: parallel.
//
//   {"id": "coarse_prep", "stage": "coarse.preprocess"}
#pragma once

#include "preprocess_options.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::coarse {

StageDescription preprocess_description();

class Preprocess : public StageWith<PreprocessOptions> {
 public:
  using StageWith::StageWith;
  CasePtr process(const CasePtr& in) override;
};

}  // namespace spineparse::plugins::coarse
