// Refinement's step 2 (refine.hpp): which chain position each physical structure takes.
//
// The networks sometimes give one vertebra or disc two labels (its upper half L4, its lower half
// L3) and then count the levels above it one off. Level assignment therefore works on *objects*:
// label components of one type (vertebra or disc) that touch and lie at the same height along the
// spine are one object, whose voxels vote for its label. Objects are ordered along the spine and
// given chain positions by dynamic programming (label agreement, each skipped level penalised)
// or by counting from the sacrum; with spacing on, the space between two consecutive objects
// must match the levels assigned between them.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "refine/refine.hpp"
#include "spine/labels.hpp"

namespace spineparse::refine {

// A label's position in kSpineChain (S 0, L5/S 1, L5 2, ...), -1 for none.
int chain_position(int label);

// Sums of voxel positions (h, w in voxels) and their products: the in-plane moments.
struct Moments {
  double n = 0, h = 0, w = 0, hh = 0, ww = 0, hw = 0;
  void add(double fh, double fw) {
    n += 1, h += fh, w += fw, hh += fh * fh, ww += fw * fw, hw += fh * fw;
  }
  void add(const Moments& o) { n += o.n, h += o.h, w += o.w, hh += o.hh, ww += o.ww, hw += o.hw; }
};

// A shape's centroid and in-plane covariance in mm, from its moments.
struct Shape {
  double h = 0, w = 0, vhh = 0, vww = 0, vhw = 0;
  Shape(const Moments& m, double sp_h, double sp_w);
  // The length of a solid along unit direction (uh, uw), from its variance.
  double extent(double uh, double uw) const;
  // The direction of least extent (a disc's or a body's axis along the spine) and that extent.
  std::pair<double, double> thin_axis() const;
  double thickness() const;
};

// One label component (26-connected voxels of one label).
struct Component {
  int label = 0;
  std::int64_t size = 0;
  Moments m;
  std::int64_t lo[3] = {INT64_MAX, INT64_MAX, INT64_MAX}, hi[3] = {-1, -1, -1};
  bool at_edge = false;  // touches the volume's in-plane border (a structure cut by the view)
  int new_label = -1;    // after step 2: > 0 the structure's label, -1 a fragment
};

// The spine's direction at each component (unit (h, w) in mm): from the nearest component of the
// other type (disc for a vertebra, vertebra for a disc: never a piece of the same structure), at
// least a quarter of that type's typical size, on one side along W to the nearest on the other;
// (0, 0) where there is none.
std::vector<std::pair<double, double>> spine_directions(const std::vector<Component>& comps,
                                                        const std::vector<Shape>& shapes);

// Components a and b (indices, a < b) of different labels of one type that share a face, edge or
// corner.
using Touching = std::vector<std::pair<int, int>>;

struct LevelResult {
  int structures = 0, relabelled = 0;  // structure objects; components whose label changed
};

// Sets every component's new_label (the structure's label, or -1 for a fragment).
LevelResult assign_levels(std::vector<Component>& comps, const Touching& touching,
                          const RefineOptions& options);

}  // namespace spineparse::refine
