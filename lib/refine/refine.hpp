// Anatomical refinement: repairs label maps with the spine's anatomy: the chain S, L5/S, L5, L4/L5,
// ..., T9/T10, T9 (vertebrae and discs alternate from the sacrum up). The original has no
// post-processing (spec 5); this is our addition and its effect is measured (tests corrupt
// true masks in known ways; metrics.evaluate reports Dice before and after).
//
// 1. Components: 3-D connected components (26-neighbourhood) of every label. Per label the
//    largest is the structure; any other component at least `min_fraction` of it (and of the
//    typical structure size) is a candidate structure too (a duplicated label), smaller ones are
//    fragments.
// 2. Order: structures are sorted along the spine's long axis (array axis W; which end is caudal
//    is read from the labels themselves) and given chain positions by dynamic programming:
//    strictly increasing, vertebra/disc type kept, as many voxels keeping their label as possible,
//    each skipped level penalised. With anchor "sacrum" the most caudal vertebra is S, which
//    repairs a shift of every label by one level; with "none" agreement alone decides.
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
};

struct RefineReport {
  int components = 0, structures = 0, relabelled = 0, fragments = 0;
  std::int64_t fragment_voxels = 0, filled_voxels = 0, changed_voxels = 0;
};

// Refines `labels` ([D,H,W] uint8) in place.
RefineReport refine_labels(NdArray& labels, const RefineOptions& options);

}  // namespace spineparse::refine
