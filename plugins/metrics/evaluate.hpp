// metrics.evaluate — scores each case's labels against its mask and writes the cohort's reports.
//
// Inputs:  labels uint8 [D,H,W]; mask uint8 [D,H,W] (cases without one pass unscored);
//          labels_unrefined (optional: written by refine.anatomy, scored too, so the summary
//          reports Dice before and after refinement).
// Outputs: case metrics dice_all, dice_vertebrae, dice_discs, assd_mm, hd95_mm, missed (in
//          run.json); each case's full scores in OUTPUT/<folder>/cases/<id>.json; after the run,
//          OUTPUT/<folder>/cases.csv and summary.json over every case run.json lists as ok or
//          skipped (so a resumed run reports the whole cohort; scores.hpp has the definitions).
// Params:  folder, distances (ASSD/HD95 cost about as much as the rest together on large volumes).
// Concurrency: parallel.
//
//   {"id": "evaluate", "stage": "metrics.evaluate"}
#pragma once

#include "metrics/scores.hpp"
#include "spineparse/case_file_stage.hpp"
#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::metrics {

struct EvaluateOptions {
  static constexpr const char* kKind = "metrics.evaluate";
  std::string folder = "metrics";
  bool distances = true;
  static void declare(ParamSet<EvaluateOptions>& s);
};
StageDescription evaluate_description();

class Evaluate : public CaseFileStage<EvaluateOptions> {
 public:
  using CaseFileStage::CaseFileStage;
  CasePtr process(const CasePtr& in) override;
  void after_run(const std::string& run_json_path, const StageContext& ctx) override;

 protected:
  // OUTPUT/<folder>/cases/<id>.json
  std::string path_for(const std::string& id, const std::string& output_dir) const override;
  bool writes_file_for(const CaseSeed& seed) const override;
};

}  // namespace spineparse::plugins::metrics
