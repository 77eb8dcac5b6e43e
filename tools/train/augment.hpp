// Training augmentation (spec 6.1), in LibTorch, with the original's bugs fixed:
//   - rotation by an integer angle in [-max, max) degrees in the slice plane, applied to every
//     slice alike; images are interpolated bilinearly (the original used nearest for the 3-D MR),
//     labels by nearest neighbour, borders reflected;
//   - elastic deformation with probability p: per-pixel displacement = Gaussian-smoothed normal
//     noise (sigma) x alpha, in the slice plane (the original's 3-D field also moved along the
//     4 mm slice axis);
//   - contrast with probability p: multiply by 0.5 + U[0,1), clipped to [-10, 10] (the original's
//     3-D version clipped z-scored data to [0, 1]);
//   - field of view (ours, off by default) with probability p: one end of the long axis (W) cut
//     off, up to fov_crop_max of it, the rest stretched over the grid: fewer levels in view, each
//     larger, as scans with another field of view show them.
// One sampling grid in normalised coordinates serves every input of a sample, whatever its
// resolution, so image, coarse logits and labels stay aligned (the original's unary field was
// drawn separately, spec 10.20).
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace spineparse::tools::train {

struct AugmentConfig {
  bool enabled = true;
  int rotate_deg = 15;
  double elastic_p = 0.3, elastic_sigma = 3.0, elastic_alpha = 15.0;
  double contrast_p = 0.1;
  double fov_crop_p = 0, fov_crop_max = 0.3;
};

struct AugmentedSample {
  torch::Tensor image;   // [D, C, H, W] float
  torch::Tensor extra;   // [D, C2, h, w] float (e.g. coarse logits) or undefined
  torch::Tensor labels;  // [D, H, W] int64
};

// Applies one random draw (determined by `seed`) to a sample; inputs as in AugmentedSample.
AugmentedSample augment(const AugmentedSample& in, const AugmentConfig& cfg, std::uint64_t seed);

}  // namespace spineparse::tools::train
