// Intensities as the measurements and statistics report them: an affine map of image values,
// applied where a voxel is read (the file's intensities from a normalised image without a
// rescaled copy of the volume), and the mean and median of a structure's voxels.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace spineparse::metrics {

struct Rescale {
  double offset = 0.0, scale = 1.0;  // value = x * scale + offset (the identity by default)
  float operator()(float x) const { return static_cast<float>(x * scale + offset); }
};

// The mean (summed in double, in order) and the lower median of `v`, which must not be empty;
// reorders `v`.
struct MeanMedian {
  double mean = 0.0, median = 0.0;
};
inline MeanMedian mean_and_median(std::vector<float>& v) {
  double sum = 0;
  for (float f : v) sum += f;
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>((v.size() - 1) / 2);
  std::nth_element(v.begin(), mid, v.end());
  return {sum / static_cast<double>(v.size()), *mid};
}

}  // namespace spineparse::metrics
