// Per-level spine measurements from a label map (docs/measurements.md has the definitions and the
// literature they follow): vertebral body and disc heights at the anterior, middle and posterior
// borders, AP depth, wedge and biconcavity ratios, Genant's height-loss grade, disc height index,
// segmental angles, L1-S1 lordosis and sacral slope.
//
// Contract: every length and angle is computed from voxel centres mapped to patient coordinates
// (ITK's LPS, mm) through the grid's geometry, so values do not depend on how the volume is stored
// (axis order, flips, spacing). Labels follow spine/labels.hpp; a structure that cannot be
// measured gets NaN (blank in the CSVs) and a reason in `note`.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "metrics/rescale.hpp"
#include "spineparse/case.hpp"
#include "spineparse/ndarray.hpp"

namespace spineparse::metrics {

// One endplate (or a disc's upper or lower surface), a line in the structure's mid-sagittal plane.
struct Endplate {
  bool valid = false;
  double normal_deg = 0;                 // angle of its superior-pointing normal from the patient's
                                         // superior axis, positive toward posterior
  std::array<double, 3> anterior{}, posterior{};  // its ends at the body's borders (LPS, mm)
};

struct LevelMeasurement {
  int label = 0;
  std::int64_t voxels = 0;
  double volume_ml = 0;
  bool complete = true;  // false: the structure touches the volume's edge (cut off)
  std::array<double, 3> centroid{};  // LPS, mm
  double anterior_height_mm, middle_height_mm, posterior_height_mm, ap_depth_mm;
  double wedge_ratio, biconcavity_ratio;  // vertebrae: Ha/Hp, Hm/Hp
  int height_loss_grade = -1;             // vertebrae: Genant 0-3; -1 not measurable
  double dhi, disc_to_body_ratio, farfan_index;  // discs
  double mean_intensity, median_intensity, signal_ratio;  // with an image (signal_ratio: discs,
                                                          // disc / mean of the adjacent bodies)
  Endplate superior, inferior;
  double confidence;     // metrics.qc's confidence in the structure (NaN: not judged)
  bool reliable = true;  // false: its values are kept but not to be trusted (the reason in note)
  std::string note;      // why values are missing or unreliable
  LevelMeasurement();
};

struct CaseMeasurement {
  std::string id;
  std::vector<LevelMeasurement> levels;  // labels 1..19, in label order
  double lordosis_l1_s1_deg;             // positive for lordosis
  double sacral_slope_deg;               // sacral plate against the patient's axial plane
  std::array<double, 9> segmental_deg;   // disc 11..19: the upper body's mid-plane against the
                                         // lower body's (the sacrum's: its plate), + lordotic
  CaseMeasurement();
  const LevelMeasurement& level(int label) const { return levels.at(label - 1); }
  // Whether every structure a value rests on is reliable: a level's own values, the segmental
  // angle at disc 10+k (vertebrae k and k+1), the lordosis (S and L1), the sacral slope (S).
  bool reliable(int label) const { return level(label).reliable; }
  bool segmental_reliable(int k) const { return reliable(k) && reliable(k + 1); }
  bool lordosis_reliable() const { return reliable(1) && reliable(6); }
};

// Records every judged structure's confidence and marks as unreliable (the reason in its note)
// those whose `reliable` is 0 (below `reliable_from`) or -1 (their case failed QC); by label - 1,
// NaN for a structure not judged. Grades again against the bodies that stay reliable.
void apply_confidence(CaseMeasurement& m, const std::array<double, 19>& confidence,
                      const std::array<double, 19>& reliable);

// labels: uint8 [D,H,W] on grid `g`; image: nullptr or float32 [D,H,W], the file's intensities
// after `rescale`.
CaseMeasurement measure_case(const std::string& id, const NdArray& labels, const Geometry& g,
                             const NdArray* image = nullptr, Rescale rescale = {});

// The cohort files: one row per case and structure / per case; records round-trip through JSON.
std::string measurements_csv_header();
std::string measurements_csv_rows(const CaseMeasurement& m,
                                  const std::vector<std::string>& outlier_columns = {});
std::string alignment_csv_header();
std::string alignment_csv_row(const CaseMeasurement& m);
std::string case_measurement_to_json(const CaseMeasurement& m);
CaseMeasurement case_measurement_from_json(const std::string& text);

// Writes DIR/measurements.csv, DIR/alignment.csv and DIR/summary.json (median and IQR per level
// and column, and the outliers: values more than 3 scaled MADs from their level's median, with
// at least 5 cases) atomically; returns summary.json's text.
std::string write_measurement_reports(const std::vector<CaseMeasurement>& cases,
                                      const std::string& dir);

// Maps another tool's label values to ours: "src:dst,src:dst" (unlisted values become 0) or a
// JSON file {"src": dst, ...}. Throws naming the bad entry.
std::array<std::uint8_t, 256> parse_label_map(const std::string& spec);
NdArrayPtr apply_label_map(const NdArray& labels, const std::array<std::uint8_t, 256>& map);

}  // namespace spineparse::metrics
