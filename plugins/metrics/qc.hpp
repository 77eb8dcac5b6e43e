// metrics.qc — how far to trust each structure and each case (metrics/qc.hpp, docs/qc.md).
//
// Inputs:  labels uint8 [D,H,W] (refined, on the model's grid: place the node after refinement,
//          before io.restore_orientation); optional: labels_unrefined (refine.anatomy),
//          label_probability uint8 [D,H,W] (fine.to_raw; consumed here), coarse_logits
//          [C,D,h,w] (coarse.gcsn); the case's training-range warnings.
// Outputs: structure_confidence float32 [2,19] (confidence_field.hpp), for measure, statistics,
//          the SR and the report; metric qc_score; run.json's "qc" object (verdict, score,
//          reasons, confidence per structure); OUTPUT/<folder>/cases/<id>.json (the same with
//          every signal); after the run OUTPUT/<folder>/review.csv, one row per case, worst first:
//          case,qc,qc_score,reasons,worst_structure,worst_confidence.
// Params:  calibration (the fitted weights), reliable_from, pass_from, fail_below, folder.
//          Concurrency: parallel.
//
//   {"id": "qc", "stage": "metrics.qc", "params": {"calibration": "../models/qc_demo.json"}}
#pragma once

#include "metrics/qc.hpp"
#include "spineparse/case_file_stage.hpp"
#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::metrics {

struct QcOptions {
  static constexpr const char* kKind = "metrics.qc";
  std::string calibration;
  double reliable_from = 0.5, pass_from = 0.7, fail_below = 0.3;
  std::string folder = "qc";
  static void declare(ParamSet<QcOptions>& s);
};
StageDescription qc_description();
StageAttributes qc_attributes();

class Qc : public CaseFileStage<QcOptions> {
 public:
  explicit Qc(const Params& p);
  CasePtr process(const CasePtr& in) override;
  void after_run(const std::string& run_json_path, const StageContext& ctx) override;

 protected:
  std::string path_for(const std::string& id, const std::string& output_dir) const override;

 private:
  spineparse::metrics::QcModel model_;
};

}  // namespace spineparse::plugins::metrics
