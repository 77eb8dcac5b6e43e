// The MR as the file's intensities: how a case's "image" maps back through io.normalise's
// normalisation (plugins/io/normalisation_field.hpp), when present. Shared by the metrics stages that
// report intensities.
#pragma once

#include "metrics/rescale.hpp"
#include "plugins/io/normalisation_field.hpp"
#include "spineparse/case.hpp"

namespace spineparse::plugins::metrics {

// The identity when the case has no "norm".
inline spineparse::metrics::Rescale file_rescale(const Case& c) {
  const auto n = plugins::io::normalisation_of(c);
  return {n.offset, n.scale};
}

}  // namespace spineparse::plugins::metrics
