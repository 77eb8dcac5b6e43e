// The MR as the file's intensities: a case's "image" undone from io.normalise's "norm" (offset,
// scale) when present. Shared by the metrics stages that report intensities.
#pragma once

#include "spineparse/case.hpp"

namespace spineparse::metrics {

// nullptr when the case has no image.
inline NdArrayPtr file_intensities(const Case& c) {
  if (!c.has("image")) return nullptr;
  NdArrayPtr image = c.get("image");
  if (!c.has("norm")) return image;
  const auto* n = c.get("norm")->data<double>();
  auto raw = NdArray::make<float>(image->shape());
  const float* x = image->data<float>();
  float* y = raw->data<float>();
  for (std::int64_t i = 0; i < image->numel(); ++i) y[i] = static_cast<float>(x[i] * n[1] + n[0]);
  return raw;
}

}  // namespace spineparse::metrics
