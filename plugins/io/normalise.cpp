#include "normalise.hpp"

#include <cmath>
#include <stdexcept>

#include "plugins/io/normalisation_field.hpp"

namespace spineparse::plugins::io {

void NormaliseOptions::declare(ParamSet<NormaliseOptions>& s) {
  using O = NormaliseOptions;
  s.add(&O::mode, "mode",
        "fixed: (x - mean) / std with the constants below; zscore: per-volume mean and std")
      .one_of({"fixed", "zscore"});
  s.add(&O::mean, "mean", "offset for mode fixed (spec 1.4)");
  s.add(&O::std, "std", "scale for mode fixed (spec 1.4)").min(1e-12);
}

StageDescription normalise_description() {
  StageDescription d = describe<NormaliseOptions>(
      "Intensity normalisation: the original's fixed (x - 466) / 379, or per-volume z-score");
  d.reads = {{"image", false, "", "float32", "D,H,W"}};
  d.writes = {{"image", false, "normalised", "float32", "D,H,W"},
              {kNormalisationField, false, "offset and scale used", "float64", "2"}};
  return d;
}

CasePtr Normalise::process(const CasePtr& in) {
  auto img = in->get("image");
  const float* x = img->data<float>();
  const std::int64_t n = img->numel();
  double offset = options_.mean, scale = options_.std;
  if (options_.mode == "zscore") {
    double sum = 0, sq = 0;
    for (std::int64_t i = 0; i < n; ++i) sum += x[i];
    offset = sum / static_cast<double>(n);
    for (std::int64_t i = 0; i < n; ++i) sq += (x[i] - offset) * (x[i] - offset);
    scale = std::sqrt(sq / static_cast<double>(n));  // population std, as numpy's default
    if (!(scale > 0))
      throw std::runtime_error("case " + in->id() + ": zscore of a constant volume");
  }
  auto out_img = NdArray::make<float>(img->shape());
  float* y = out_img->data<float>();
  // Same arithmetic as numpy on float32 data: (x - mean) / std in float32.
  const float fo = static_cast<float>(offset), fs = static_cast<float>(scale);
  for (std::int64_t i = 0; i < n; ++i) y[i] = (x[i] - fo) / fs;
  auto out = in->derive();
  out->set("image", out_img);
  out->set(kNormalisationField, normalisation_array({offset, scale}));
  return out;
}

}  // namespace spineparse::plugins::io
