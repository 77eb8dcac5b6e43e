// The MR as the file's intensities: how a case's "image" maps back through io.normalise's "norm"
// (offset, scale), when present. Shared by the metrics stages that report intensities.
#pragma once

#include "metrics/rescale.hpp"
#include "spineparse/case.hpp"

namespace spineparse::plugins::metrics {

// The identity when the case has no "norm".
inline spineparse::metrics::Rescale file_rescale(const Case& c) {
  if (!c.has("norm")) return {};
  const auto* n = c.get("norm")->data<double>();
  return {n[0], n[1]};
}

}  // namespace spineparse::plugins::metrics
