// Segmentation scores, defined as the original's evaluation (spec 7.2, 7.3) plus HD95.
//
// Per structure (labels 1..19), with P the predicted and G the true voxels:
//   dice = 2TP / (2TP + FP + FN + 1e-10), precision = TP / (TP + FP + 1e-10),
//   recall = TP / (TP + FN + 1e-10); a structure absent from both is excluded (NaN), as the
//   original does. One present on one side only scores 0 for all three.
//   assd_mm: average symmetric surface distance (medpy's assd: surfaces = voxels with a
//   background voxel among their 18 neighbours, the array edge counting as background; distances
//   in mm with the voxel spacing), hd95_mm: max of the two directed 95th percentiles (medpy hd95).
//   Both need the structure on both sides: otherwise NaN, and the structure is counted as
//   missed (in the truth only) or spurious (predicted only). The original silently drops such
//   structures from ASSD; we report how many there are.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "spineparse/case.hpp"

namespace spineparse::metrics {

// Voxel spacing of the array axes (D, H, W) from a case's geometry (file axes H, W, D).
std::array<double, 3> spacing_dhw(const Geometry& g);

struct StructureScore {
  int label = 0;
  double dice = 0, precision = 0, recall = 0, assd_mm = 0, hd95_mm = 0;  // NaN where undefined
  std::int64_t truth_voxels = 0, pred_voxels = 0;
};

// pred, truth: uint8 [D,H,W]; spacing in mm for the array axes (D, H, W).
// confusion, when given, receives the (kMaxLabel+1)^2 voxel counts, row = true label, column =
// predicted.
std::vector<StructureScore> score_case(const NdArray& pred, const NdArray& truth,
                                       std::array<double, 3> spacing_dhw, bool distances = true,
                                       std::vector<std::int64_t>* confusion = nullptr);

struct CaseScores {
  std::string id;
  std::vector<StructureScore> structures;  // labels 1..19 in order
  double dice_before = -1;                 // mean Dice before refinement (when known), else < 0
  std::vector<std::int64_t>
      confusion;  // (kMaxLabel+1)^2 voxel counts, truth rows x predicted columns; may be empty
};

// Mean over present structures: `which` = "all" (1-19), "vertebrae" (1-10), "discs" (11-19).
double case_mean(const std::vector<StructureScore>& s, double StructureScore::*field,
                 const std::string& which);

// One case's scores as JSON (NaN as null) and back: the per-case records reports are built from.
std::string case_scores_to_json(const CaseScores& c);
CaseScores case_scores_from_json(const std::string& text);  // throws std::runtime_error

// metrics/cases.csv, metrics/summary.json and metrics/confusion.csv (cohort voxel counts, true
// label rows x predicted label columns, when the cases carry them) under `folder` (atomically);
// returns the summary JSON text.
// The cases a run's record (run.json) lists as ok or skipped, in natural order: those whose
// per-case records the whole-run reports cover, after a resumed or merged run too.
std::vector<std::string> recorded_case_ids(const std::string& run_json_path);

std::string write_reports(const std::vector<CaseScores>& cases, const std::string& folder,
                          int failed_cases = 0);

}  // namespace spineparse::metrics
