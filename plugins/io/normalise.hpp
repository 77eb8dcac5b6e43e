// io.normalise — intensity normalisation of the MR volume.
//
// Inputs:  image float32 [D,H,W].
// Outputs: image (normalised, float32), norm float64 [2] = {offset, scale} such that
//          normalised = (raw - offset) / scale. Later resampling stages use it to pad with the
//          normalised value of a raw zero, which keeps "resize, then normalise" (the original's
//          order, spec 2.1) and "normalise, then resize" identical.
// Params:  mode "fixed" (the original's (x - 466) / 379, spec 1.4) or "zscore" (per volume);
//          mean, std for "fixed".
// Errors:  zscore of a constant volume. Concurrency: parallel.
//
//   {"id": "normalise", "stage": "io.normalise", "params": {"mode": "fixed"}}
#pragma once

#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::io {

struct NormaliseOptions {
  static constexpr const char* kKind = "io.normalise";
  std::string mode = "fixed";
  double mean = 466.0, std = 379.0;
  static void declare(ParamSet<NormaliseOptions>& s);
};
StageDescription normalise_description();

class Normalise : public StageWith<NormaliseOptions> {
 public:
  using StageWith::StageWith;
  CasePtr process(const CasePtr& in) override;
};

}  // namespace spineparse::plugins::io
