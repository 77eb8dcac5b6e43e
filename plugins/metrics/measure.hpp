// metrics.measure — per-level spine measurements of every case (docs/measurements.md): heights,
// depth, wedge and biconcavity ratios, Genant grade, disc height index, segmental angles, L1-S1
// lordosis and sacral slope, in patient coordinates; no mask needed.
//
// Inputs:  labels uint8 [D,H,W]; image float32 [D,H,W] (optional: intensities and signal ratios);
//          norm (optional: io.normalise's offset and scale, so intensities are the file's);
//          structure_confidence (optional, metrics.qc: values of unreliable structures marked
//          reliable=0 and left out of the summaries and run.json's metrics).
// Outputs: case metrics lordosis_l1_s1_deg, levels_measured, height_loss_grade_max (run.json,
//          report; reliable structures only); each case's record in
//          OUTPUT/<folder>/cases/<id>.json; after the run OUTPUT/<folder>/measurements.csv,
//          alignment.csv and summary.json (median and IQR per level, outliers) over every case
//          run.json lists as ok or skipped.
// Params:  folder. Concurrency: parallel.
//
//   {"id": "measure", "stage": "metrics.measure"}
#pragma once

#include "spineparse/case_file_stage.hpp"
#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::metrics {

struct MeasureOptions {
  static constexpr const char* kKind = "metrics.measure";
  std::string folder = "measurements";
  static void declare(ParamSet<MeasureOptions>& s);
};
StageDescription measure_description();
StageAttributes measure_attributes();

class Measure : public CaseFileStage<MeasureOptions> {
 public:
  using CaseFileStage::CaseFileStage;
  CasePtr process(const CasePtr& in) override;
  void after_run(const std::string& run_json_path, const StageContext& ctx) override;

 protected:
  std::string path_for(const std::string& id, const std::string& output_dir) const override;
};

}  // namespace spineparse::plugins::metrics
