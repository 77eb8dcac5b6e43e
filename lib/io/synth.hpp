// Synthetic spine phantoms that look to the pipeline like MRSpineSeg (spec 1.1, 1.2):
// the original layout and names, labels 1 = S ... 10 = T9 and 11 = L5/S ... 19 = T9/T10 stacked in
// anatomical order along a curved spine, the long axis along array axis 1 (W) and the spine in the
// middle half of axis 0 (H), 12-15 sagittal slices about 4 mm apart on axis 2, in-plane sizes of
// real scans at 0.3-0.75 mm, T2-like contrast (discs and CSF bright, bodies darker), Rician noise,
// a bias field, and varied curvature, vertebra sizes and field of view (upper levels are sometimes
// cut off). Everything is a function of (seed, case number): the same seed gives the same files.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "spineparse/case.hpp"

namespace spineparse::io {

struct SynthOptions {
  int cases = 10;
  std::uint64_t seed = 0;
  int first_case = 1;                  // case numbers first_case .. first_case + cases - 1
  int min_size = 512, max_size = 880;  // in-plane size (H and W), inclusive
  int min_slices = 12, max_slices = 15;
  bool masks = true;
  // Slice spacing in mm; 0: drawn per case (3.6-4.6 mm). Given, each case shows the same anatomy
  // over the same slab (the slice count scales: a 13-slice 4 mm case is 52 slices at 1 mm), as a
  // thin-slice (e.g. 3D) acquisition of the same spine would.
  double slice_spacing = 0;
  // Axis codes to store the volumes in ("" or "PIL": as the training data, i toward posterior,
  // j toward inferior, k toward left); the voxels are the same, permuted and flipped exactly.
  std::string orientation;
};

struct Phantom {
  std::string id;    // "Case{i}"
  NdArrayPtr image;  // int16 [D,H,W]
  NdArrayPtr mask;   // uint8 [D,H,W]
  Geometry geometry;
  int highest_label_visible = 0;  // the most cranial vertebra label present
};

// One phantom, computed in memory.
Phantom make_phantom(const SynthOptions& options, int case_number);

struct SynthSummary {
  std::string id;
  std::int64_t H = 0, W = 0, D = 0;
  Geometry geometry;
  int labels_present = 0;
};

// Writes OUT/original_mr/Case{i}.nii.gz and OUT/mask/mask_case{i}.nii.gz (atomically) and
// OUT/cohort.json. `progress` is called after each case.
std::vector<SynthSummary> write_cohort(
    const SynthOptions& options, const std::string& out_dir,
    const std::function<void(const SynthSummary&)>& progress = {});

}  // namespace spineparse::io
