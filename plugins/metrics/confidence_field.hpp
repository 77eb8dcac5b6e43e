// metrics.qc's "structure_confidence" field, the one place its name and layout are written down:
// float32 [2, 19], column label - 1: row 0 the structure's confidence in [0, 1]
// (metrics/qc.hpp), row 1 whether it is reliable: 1 yes, 0 no (its confidence is below the
// threshold), -1 no (its case failed QC, whatever its own confidence); NaN in both for an absent
// structure. Stages that mark values as reliable or not (measure, statistics, the SR, the
// report) read it through here and declare it optional: without it every structure counts as
// reliable and no confidence is reported.
#pragma once

#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "spineparse/case.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::metrics {

inline constexpr const char* kConfidenceField = "structure_confidence";

struct StructureConfidence {
  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  std::array<double, 19> value, is_reliable;  // by label - 1; NaN: absent
  StructureConfidence() { value.fill(kNaN), is_reliable.fill(kNaN); }
  double of(int label) const { return label >= 1 && label <= 19 ? value[label - 1] : kNaN; }
  // Only a present structure judged unreliable is: an absent one has no values to doubt.
  bool reliable(int label) const {
    return !(label >= 1 && label <= 19 && is_reliable[label - 1] <= 0.0);
  }
};

inline std::optional<StructureConfidence> confidence_of(const Case& c) {
  if (!c.has(kConfidenceField)) return std::nullopt;
  const auto a = c.get(kConfidenceField);
  if (a->numel() != 38 || a->dtype() != DType::kFloat32) return std::nullopt;
  StructureConfidence s;
  for (int k = 0; k < 19; ++k)
    s.value[k] = a->data<float>()[k], s.is_reliable[k] = a->data<float>()[19 + k];
  return s;
}

inline NdArrayPtr confidence_array(const StructureConfidence& s) {
  auto a = NdArray::make<float>({2, 19});
  for (int k = 0; k < 19; ++k) {
    a->data<float>()[k] = static_cast<float>(s.value[k]);
    a->data<float>()[19 + k] = static_cast<float>(s.is_reliable[k]);
  }
  return a;
}

// The field as a reading stage declares it (optional), saying what it is read for.
inline FieldUse confidence_read(const std::string& purpose) {
  return {kConfidenceField, true, purpose, "float32", "2,19"};
}

}  // namespace spineparse::plugins::metrics
