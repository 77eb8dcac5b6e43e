// Anatomical refinement: repairs label maps with the spine's anatomy: the chain S, L5/S, L5, L4/L5,
// ..., T9/T10, T9 (vertebrae and discs alternate from the sacrum up). The original has no
// post-processing (spec 5); this is our addition and its effect is measured (tests corrupt
// true masks in known ways; metrics.evaluate reports Dice before and after).
//
// 1. Components: 3-D connected components (26-neighbourhood) of every label. A vertebra
//    component about two bodies long along the spine (a disc between them missed) is cut in two.
//    Touching components of one type at one height along the spine are one structure labelled
//    two ways: an object whose voxels vote for its label (levels.hpp). Per label the largest
//    object is the structure unless small for its type; any other object at least `min_fraction`
//    of it (and of the typical structure size) is a candidate structure too (a duplicated label),
//    smaller ones are fragments.
// 2. Order: structures are sorted along the spine's long axis (array axis W; which end is caudal
//    is read from the labels themselves). With anchor "sacrum" the most caudal structure the
//    networks call S (or, if none is, the most caudal vertebra when it has a sacrum's size) is S
//    and the levels above it are counted (vertebra, disc, vertebra, ...), which repairs a
//    network that names every level from some point on one off; without a sacrum, or with
//    "none", chain positions come by dynamic programming: strictly
//    increasing, vertebra/disc type kept, as many voxels keeping their label as possible, each
//    skipped level penalised.
// 3. Fragments go to the neighbouring structure they touch most (face contacts), else background.
// 4. Holes: background enclosed by one structure within a slice is filled with it.
#pragma once

#include <cstdint>

#include "spineparse/ndarray.hpp"

namespace spineparse::refine {

struct RefineOptions {
  double min_fraction = 0.3;  // of the label's largest component (and of the median structure)
  bool anchor_sacrum = true;
  bool fill_holes = true;
  bool reorder = true;
  double spacing_h = 1, spacing_w = 1;  // the in-plane voxel size (mm) along array axes H and W
};

struct RefineReport {
  int components = 0, structures = 0, relabelled = 0, fragments = 0;
  std::int64_t fragment_voxels = 0, filled_voxels = 0, changed_voxels = 0;
};

// Refines `labels` ([D,H,W] uint8) in place.
RefineReport refine_labels(NdArray& labels, const RefineOptions& options);

}  // namespace spineparse::refine
