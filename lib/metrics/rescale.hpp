// Intensities as the measurements and statistics report them: an affine map of image values,
// applied where a voxel is read (the file's intensities from a normalised image without a
// rescaled copy of the volume), each label's values gathered, and their mean and median.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "spine/labels.hpp"
#include "spineparse/ndarray.hpp"

namespace spineparse::metrics {

struct Rescale {
  double offset = 0.0, scale = 1.0;  // value = x * scale + offset (the identity by default)
  float operator()(float x) const { return static_cast<float>(x * scale + offset); }
};

// The mean (summed in double, in order) and the lower median of `v`, which must not be empty;
// may reorder `v`.
struct MeanMedian {
  double mean = 0.0, median = 0.0;
};
MeanMedian mean_and_median(std::vector<float>& v);

// The k-th smallest value of `v` (from 0; k < v.size()), -0 reported as +0; may reorder `v`.
float kth_smallest(std::vector<float>& v, std::size_t k);

// The rescaled image values of each label's voxels (uint8 labels and float32 image of one shape),
// in memory order; index 0 and labels past the structures stay empty. `count`: label_counts of
// `labels` (spine/labels.hpp), to allocate each list once.
std::vector<std::vector<float>> intensities_by_label(
    const NdArray& labels, const NdArray& image, Rescale rescale,
    const std::array<std::int64_t, kNumClasses>& count);

}  // namespace spineparse::metrics
