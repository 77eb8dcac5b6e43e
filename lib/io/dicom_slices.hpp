// Slices placed by ImagePositionPatient and ImageOrientationPatient put in order along their
// normal, with the checks a volume needs (one orientation, no position twice, even spacing):
// shared by classic series (one file per slice) and multi-frame objects (one frame per slice).
#pragma once

#include <array>
#include <string>
#include <vector>

namespace spineparse::io {

struct Placed {
  std::string file;  // what messages name it by: a file, or a frame of one
  bool has_orientation = false, has_position = false;
  std::array<double, 6> orientation{};
  std::array<double, 3> position{};
};

struct Slice {
  double at;  // its position along the normal (mm)
  std::string file;
};

// The slices in order of position along the normal of the first one's orientation. Throws,
// starting with `what`, when one lacks a position or orientation, orientations differ, positions
// repeat or the spacing is uneven.
std::vector<Slice> slices_in_order(const std::vector<Placed>& files, const std::string& what);

}  // namespace spineparse::io
