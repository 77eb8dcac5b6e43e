// Per-structure statistics of a label map (like TotalSegmentator's --statistics): needs no mask.
#pragma once

#include <array>
#include <limits>
#include <string>
#include <vector>

#include "metrics/rescale.hpp"
#include "spineparse/case.hpp"
#include "spineparse/ndarray.hpp"

namespace spineparse::metrics {

struct StructureStats {
  int label = 0;
  std::int64_t voxels = 0;
  double volume_mm3 = 0.0;
  double mean_intensity = 0.0;       // of the MR image, NaN without voxels
  double median_intensity = 0.0;     // the lower median for an even count
  std::array<double, 3> centroid{};  // patient coordinates (ITK's LPS, mm), NaN without voxels
  double confidence = std::numeric_limits<double>::quiet_NaN();  // metrics.qc's, NaN: not judged
};

// Labels 1..19 of `labels` (uint8 [D,H,W]) over `image` (float32 [D,H,W], the intensities to
// report, after `rescale`) on the grid `g`.
std::vector<StructureStats> structure_statistics(const NdArray& labels, const NdArray& image,
                                                 const Geometry& g, Rescale rescale = {});

// One CSV row per structure: case,label,structure,voxels,volume_mm3,mean,median,x,y,z (LPS),
// confidence.
std::string statistics_csv_header();
std::string statistics_csv_rows(const std::string& case_id, const std::vector<StructureStats>& s);

}  // namespace spineparse::metrics
