// The method's resampling, reproduced exactly (spec 2.1, 4.3, 9):
//   - resize_slices: scikit-image 0.19 transform.resize(order=3, mode='constant', cval,
//     anti_aliasing=default, clip=True) on float64 data with SciPy >= 1.6: Gaussian anti-alias
//     pre-filter (sigma = max(0, (in/out - 1)/2), zero padded, truncated at 4 sigma) when any axis
//     shrinks, then ndimage.zoom(grid_mode=True): cubic B-spline with prefilter, pixel-centre
//     mapping o -> (o + 0.5) * in/out - 0.5, 'grid-constant' padding; then clipping to the input's
//     range. The slice axis is never rescaled, so slices pass unchanged.
//   - crop_rows: the central rows [floor(H/4), H - floor(H/4)).
// Torch-free: the preprocessing stages use it on host memory.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "spineparse/ndarray.hpp"

namespace spineparse::nn {

struct RowCrop {
  std::int64_t begin = 0, end = 0;  // rows [begin, end)
  std::int64_t rows() const { return end - begin; }
};
// The original keeps rows [floor(H/4), H - floor(H/4)); for H % 4 != 0 this has H - 2 floor(H/4)
// rows, and the reassembly uses that count (the original's floor(H/2) breaks there, spec 10.13).
RowCrop central_rows(std::int64_t H);

// in: [D, H, W] float32 (rows [crop.begin, crop.end) are used); out: [D, oh, ow] float32.
// `cval` is the value outside the image (a raw zero: 0, or its normalised value).
std::vector<float> resize_slices(const float* in, std::int64_t D, std::int64_t H, std::int64_t W,
                                 RowCrop crop, std::int64_t oh, std::int64_t ow, double cval);

// The networks' inputs, built the same way for inference (the coarse.preprocess and fine.prepare
// stages) and for training. `image` is [D,H,W] float32 normalised as (raw - offset) / scale, so a
// raw zero (outside the image, padded slices) is (0 - offset) / scale.
struct CoarseInput {
  std::shared_ptr<NdArray> input;  // [1, 1, max(D, min_slices), height, width]
  std::int64_t pad_before = 0;     // slices padded before (ceil(delta / 2))
};
CoarseInput make_coarse_input(const NdArray& image, double offset, double scale,
                              std::int64_t height, std::int64_t width, std::int64_t min_slices);
// [D, height, width], not padded.
std::shared_ptr<NdArray> make_fine_mr(const NdArray& image, double offset, double scale,
                                      std::int64_t height, std::int64_t width);

}  // namespace spineparse::nn
