// metrics.statistics — per-structure statistics of every case, with or without a mask (like
// TotalSegmentator's --statistics).
//
// Inputs:  labels uint8 [D,H,W]; image float32 [D,H,W]; norm (optional: io.normalise's offset
//          and scale, so that the MR intensities reported are the file's, not the normalised).
// Outputs: case metrics structures_found and labelled_volume_ml (run.json, report); each case's
//          rows in OUTPUT/<folder>/statistics/<id>.csv; after the run OUTPUT/<folder>/
//          statistics.csv over every case run.json lists as ok or skipped: voxels, volume (mm3),
//          mean and median intensity, centroid in patient coordinates (LPS, mm) per structure.
// Params:  folder. Concurrency: parallel.
//
//   {"id": "statistics", "stage": "metrics.statistics"}
#pragma once

#include "spineparse/case_file_stage.hpp"
#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::metrics {

struct StatisticsOptions {
  static constexpr const char* kKind = "metrics.statistics";
  std::string folder = "metrics";
  static void declare(ParamSet<StatisticsOptions>& s);
};
StageDescription statistics_description();

class Statistics : public CaseFileStage<StatisticsOptions> {
 public:
  using CaseFileStage::CaseFileStage;
  CasePtr process(const CasePtr& in) override;
  void after_run(const std::string& run_json_path, const StageContext& ctx) override;

 protected:
  std::string path_for(const std::string& id, const std::string& output_dir) const override;
};

}  // namespace spineparse::plugins::metrics
