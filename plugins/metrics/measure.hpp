// metrics.measure — per-level spine measurements of every case (docs/measurements.md): heights,
// depth, wedge and biconcavity ratios, Genant grade, disc height index, segmental angles, L1-S1
// lordosis and sacral slope, in patient coordinates; no mask needed.
//
// Inputs:  labels uint8 [D,H,W]; image float32 [D,H,W] (optional: intensities and signal ratios);
//          norm (optional: io.normalise's offset and scale, so intensities are the file's).
// Outputs: case metrics lordosis_l1_s1_deg, levels_measured, height_loss_grade_max (run.json,
//          report); each case's record in OUTPUT/<folder>/cases/<id>.json; after the run
//          OUTPUT/<folder>/measurements.csv, alignment.csv and summary.json (median and IQR per
//          level, outliers) over every case run.json lists as ok or skipped.
// Params:  folder. Concurrency: parallel.
//
//   {"id": "measure", "stage": "metrics.measure"}
#pragma once

#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::metrics {

struct MeasureOptions {
  std::string folder = "measurements";
  static void declare(ParamSet<MeasureOptions>& s);
};
StageDescription measure_description();

class Measure : public StageWith<MeasureOptions> {
 public:
  using StageWith::StageWith;
  void open(const StageContext& ctx) override { output_dir_ = ctx.output_dir; }
  CasePtr process(const CasePtr& in) override;
  void after_run(const std::string& run_json_path, const StageContext& ctx) override;
  std::vector<std::string> outputs_for(const CaseSeed& seed,
                                       const StageContext& ctx) const override;

 private:
  std::string record_path(const std::string& output_dir, const std::string& id) const;
  std::string output_dir_;
};

}  // namespace spineparse::plugins::metrics
