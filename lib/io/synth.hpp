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
#include <limits>
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
  // Share of the vertebrae L5..T9 drawn with a wedge fracture (anterior height 20-45 % lower, the
  // superior endplate tilted, the disc above following it as a disc fills a fracture's
  // depression); drawn from its own generator, so 0 leaves the cohort unchanged.
  double fracture_rate = 0;
  // The sacrum and the L5/S disc. false (the default, the demo models' first training data): the
  // sacrum turned 20-34 degrees from the spine's curve on its own, meeting the disc with a gap of
  // tissue or a corner (so no truth for the sacral plate, the lordosis and the L5/S angle). true:
  // the disc a 4-14 degree wedge, taller in front, with the sacrum's plate on its lower surface,
  // as in a real spine.
  bool seated_sacrum = false;
};

// What the phantom's geometry says a measurement should find (metrics/measure.hpp has the
// definitions): heights at the body's anterior and posterior borders and between, along the
// structure's axis; AP depth; each endplate's superior normal, in degrees from the patient's
// superior axis toward posterior. NaN where a value is not defined (the sacrum's heights).
struct TrueLevel {
  int label = 0;
  bool complete = false;  // the whole structure lies inside the field of view
  double anterior_height_mm = std::numeric_limits<double>::quiet_NaN();
  double middle_height_mm = std::numeric_limits<double>::quiet_NaN();
  double posterior_height_mm = std::numeric_limits<double>::quiet_NaN();
  double ap_depth_mm = std::numeric_limits<double>::quiet_NaN();
  double superior_deg = std::numeric_limits<double>::quiet_NaN();
  double inferior_deg = std::numeric_limits<double>::quiet_NaN();
  double fracture = 0;  // anterior height loss drawn (0: none)
};

struct Phantom {
  std::string id;    // "Case{i}"
  NdArrayPtr image;  // int16 [D,H,W]
  NdArrayPtr mask;   // uint8 [D,H,W]
  Geometry geometry;
  int highest_label_visible = 0;  // the most cranial vertebra label present
  std::vector<TrueLevel> truth;   // labels 1..19 in label order
};

// The truth files of a cohort: truth_measurements.csv (case, label, structure, complete, the
// TrueLevel values) and truth_alignment.csv (lordosis L1-S1, sacral slope, segmental angles,
// blank where a structure involved is not complete), as measure writes them.
using CaseTruth = std::pair<std::string, std::vector<TrueLevel>>;  // case id, levels
std::string truth_measurements_csv(const std::vector<CaseTruth>& cases);
std::string truth_alignment_csv(const std::vector<CaseTruth>& cases);

// One phantom, computed in memory.
Phantom make_phantom(const SynthOptions& options, int case_number);

struct SynthSummary {
  std::string id;
  std::int64_t H = 0, W = 0, D = 0;
  Geometry geometry;
  int labels_present = 0;
  std::vector<TrueLevel> truth;
};

// Writes OUT/original_mr/Case{i}.nii.gz and OUT/mask/mask_case{i}.nii.gz (atomically) and
// OUT/cohort.json, OUT/truth_measurements.csv and OUT/truth_alignment.csv. `progress` is called
// after each case.
std::vector<SynthSummary> write_cohort(
    const SynthOptions& options, const std::string& out_dir,
    const std::function<void(const SynthSummary&)>& progress = {});

}  // namespace spineparse::io
