// io.normalise's "norm" field, the one place its name and layout are written down: float64 [2],
// the offset and scale such that image = (file intensity - offset) / scale. Stages that undo the
// normalisation (the networks' padding value, reported intensities) read it through here and
// declare it optional: without it the image is the file's intensities.
#pragma once

#include "spineparse/case.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::io {

inline constexpr const char* kNormalisationField = "norm";

struct Normalisation {
  double offset = 0.0;
  double scale = 1.0;
};

// {0, 1} when the case has no "norm".
inline Normalisation normalisation_of(const Case& c) {
  if (!c.has(kNormalisationField)) return {};
  const double* n = c.get(kNormalisationField)->data<double>();
  return {n[0], n[1]};
}

inline NdArrayPtr normalisation_array(const Normalisation& n) {
  auto a = NdArray::make<double>({2});
  a->data<double>()[0] = n.offset;
  a->data<double>()[1] = n.scale;
  return a;
}

// The field as a reading stage declares it (optional), saying what it is read for.
inline FieldUse normalisation_read(const std::string& purpose) {
  return {kNormalisationField, true, purpose, "float64", "2"};
}

}  // namespace spineparse::plugins::io
