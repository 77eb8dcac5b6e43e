// metrics.evaluate — scores each case's labels against its mask and writes the cohort's reports.
//
// Inputs:  labels uint8 [D,H,W]; mask uint8 [D,H,W] (cases without one pass unscored);
//          labels_unrefined (optional: written by refine.anatomy, scored too, so the summary
//          reports Dice before and after refinement).
// Outputs: case metrics dice_all, dice_vertebrae, dice_discs, assd_mm, hd95_mm, missed (in
//          run.json); after the last case OUTPUT/<folder>/cases.csv and summary.json (scores.hpp
//          has the definitions).
// Params:  folder, distances (ASSD/HD95 cost about as much as the rest together on large volumes).
// Concurrency: parallel.
//
//   {"id": "evaluate", "stage": "metrics.evaluate"}
#pragma once

#include <mutex>

#include "metrics/scores.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::metrics {

StageDescription evaluate_description();

class Evaluate : public Stage {
 public:
  explicit Evaluate(const Params& p) : params_(p) {}
  void open(const StageContext& ctx) override;
  CasePtr process(const CasePtr& in) override;
  void close() override;

 private:
  Params params_;
  std::string output_dir_;
  std::mutex mu_;
  std::vector<CaseScores> scores_;
};

}  // namespace spineparse::metrics
