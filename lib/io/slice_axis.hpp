// Resampling along the slice axis only (D of [.., D, H, W]): the grid a model trained on thick
// slices expects, made from a scan with thin ones, and the way back.
//
// The new grid covers the same slab: `to` slices of to_spacing = from * from_spacing / to mm,
// slice k's centre at (k + 0.5) * to_spacing mm from the slab's start (as the source's). In-plane
// axes are untouched.
#pragma once

#include <cstdint>

#include "spineparse/case.hpp"

namespace spineparse::io {

struct SlicePlan {
  std::int64_t from = 0, to = 0;
  double from_spacing = 0, to_spacing = 0;
  bool identity() const { return from == to; }
};

// `slices` slices `spacing` mm apart to about `target` mm apart: max(1, round(slices * spacing /
// target)) slices.
SlicePlan plan_slices(std::int64_t slices, double spacing, double target);

// The plan that undoes `p` (back to p.from slices).
SlicePlan inverse(const SlicePlan& p);

// Intensities (any dtype in, float32 out): to fewer slices, each new slice is the average of the
// source slabs it covers, weighted by overlap (a thick slice integrates its slab); to more slices,
// linear interpolation between the nearest source slice centres (clamped at the ends).
NdArrayPtr resample_slices(const NdArray& a, const SlicePlan& p);

// Labels (any dtype, kept): each new slice copies the source slice whose slab holds its centre.
NdArrayPtr resample_label_slices(const NdArray& a, const SlicePlan& p);

// The geometry of the new grid: slice spacing to_spacing, origin moved along the slice axis
// (file axis k) so that the slab stays where it was.
Geometry resample_geometry(const Geometry& g, const SlicePlan& p);

}  // namespace spineparse::io
