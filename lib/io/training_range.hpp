// The range of scans a model was trained on, recorded in its weights' metadata, and the check of
// a case against it.
//
// Properties are measured on the grid the networks see (the model's orientation, [D,H,W] with
// D the slice axis): slice_spacing_mm (spacing along D), inplane_spacing_mm (the larger of the
// H and W spacings), slices (D), fov_h_mm and fov_w_mm (the extents along H and W: for a PIL
// model anterior-posterior and superior-inferior). A range is the median and the 5th and 95th
// percentiles (linear interpolation between order statistics, as numpy.percentile) over the
// training cases.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "spineparse/case.hpp"

namespace spineparse::io {

// The metadata key of the range (a JSON object as a string).
inline constexpr const char* kTrainingRangeKey = "training_range";

struct PropertyRange {
  double median = 0, p5 = 0, p95 = 0;
};

using VolumeProperties = std::map<std::string, double>;

struct TrainingRange {
  int cases = 0;                                   // 0: not measured (documented defaults)
  std::string source;                              // where the numbers come from, for messages
  std::map<std::string, PropertyRange> properties;  // by property name (above)

  bool empty() const { return properties.empty(); }
  std::string to_json() const;
  // Throws std::runtime_error naming `where` when the text is not such a range.
  static TrainingRange from_json(const std::string& text, const std::string& where);
};

// The properties of a volume of size `ijk` (file axes i=H, j=W, k=D) and spacing (i, j, k).
VolumeProperties volume_properties(const Geometry& g, const std::array<std::int64_t, 3>& ijk);

// The range over the given cases; throws when `cases` is empty.
TrainingRange training_range_of(const std::vector<VolumeProperties>& cases,
                                const std::string& source);

// The range over the cases of a dataset folder (io::list_dataset, layout auto), each measured in
// `model_orientation` (axis codes; "" = as stored). Throws naming the folder or case.
TrainingRange measure_training_range(const std::string& dir, const std::string& model_orientation);

// The documented defaults for the original's data (MRSpineSeg), used by import-checkpoint when
// no training data is given; see docs/training.md.
TrainingRange original_data_range();

// One property of a case outside the range widened by `tolerance` (relative: below
// p5 / (1 + tolerance) or above p95 * (1 + tolerance)).
struct RangeFinding {
  std::string property;
  double value = 0;
  PropertyRange range;
  std::string message;  // "slice_spacing_mm 1.00 is outside the model's training range ..."
};
std::vector<RangeFinding> check_range(const TrainingRange& r, const VolumeProperties& p,
                                      double tolerance);

// Whether `value` lies outside `r` widened by `tolerance` (as check_range).
bool outside(const PropertyRange& r, double value, double tolerance);

}  // namespace spineparse::io
