// An affine map of image values, applied where a voxel is read: the file's intensities from a
// normalised image without a rescaled copy of the volume.
#pragma once

namespace spineparse::metrics {

struct Rescale {
  double offset = 0.0, scale = 1.0;  // value = x * scale + offset (the identity by default)
  float operator()(float x) const { return static_cast<float>(x * scale + offset); }
};

}  // namespace spineparse::metrics
