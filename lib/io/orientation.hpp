// Orientation: which anatomical direction each file axis points to, and exact (permute and flip,
// no resampling) conversion of volumes between orientations.
//
// Axis codes are nibabel's: three letters from R/L, A/P, S/I, one per file axis (i, j, k), each
// naming the direction in which that axis's index grows ("PIL": i toward posterior, j toward
// inferior, k toward left; dcm2niix writes "RAS"). Geometry is ITK's (LPS, direction columns are
// the axes); volumes are [.., D, H, W] = file axes (k, i, j).
#pragma once

#include <array>
#include <string>

#include "spineparse/case.hpp"
#include "spineparse/ndarray.hpp"

namespace spineparse::io {

// Patient coordinates (LPS, mm) to continuous file indices (h, w, d) = geometry columns 0, 1, 2:
// the inverse of origin + direction * diag(spacing) * index. Throws std::invalid_argument for a
// singular grid.
class PatientToIndex {
 public:
  explicit PatientToIndex(const Geometry& g);
  std::array<double, 3> operator()(const std::array<double, 3>& p) const;

 private:
  std::array<double, 9> inv_{};
  std::array<double, 3> origin_{};
};

// The closest axis codes of a geometry (oblique axes take the nearest direction; each world axis
// is used once). Throws std::invalid_argument for a singular direction.
std::string axis_codes(const Geometry& g);

// True for three letters naming each of the world axes once ("PIL", "RAS"); `why` says otherwise.
bool valid_axis_codes(const std::string& codes, std::string* why = nullptr);

// target file axis t <- source file axis source[t], reversed where flip[t].
struct Reorientation {
  std::array<int, 3> source{0, 1, 2};
  std::array<bool, 3> flip{false, false, false};
  bool identity() const;
  Reorientation inverse() const;
  std::string describe() const;  // "i <- -j, j <- k, k <- i" or "none"
};

// From one orientation to another. Throws std::invalid_argument for invalid codes.
Reorientation plan_reorientation(const std::string& from, const std::string& to);

// A volume [.., D, H, W] (any dtype; leading axes such as classes kept) in the new orientation.
NdArrayPtr reorient(const NdArray& a, const Reorientation& r);

// The geometry of the reoriented grid (the same voxels in the same places in space).
// `size_ijk`: the source's sizes along file axes i, j, k.
Geometry reorient(const Geometry& g, const std::array<std::int64_t, 3>& size_ijk,
                  const Reorientation& r);

// The file axis of `codes` along the world axis of letter `c` (R/L, A/P or S/I), or -1.
int axis_along(const std::string& codes, char c);

// "sagittal", "coronal" or "axial": the plane whose normal is the world axis of letter c.
std::string plane_of(char c);

}  // namespace spineparse::io
