// refine.anatomy — the anatomical label repair of refine/refine.hpp as a stage.
//
// Inputs:  labels uint8 [D,H,W].
// Outputs: labels (refined), labels_unrefined (the input, so the metrics can report both).
// Params:  enabled, anchor (sacrum | none), min_fraction, fill_holes, reorder.
// Concurrency: parallel.
//
//   {"id": "refine", "stage": "refine.anatomy", "params": {"anchor": "sacrum"}}
#pragma once

#include "refine/refine.hpp"
#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::refine {

struct AnatomyOptions {
  static constexpr const char* kKind = "refine.anatomy";
  bool enabled = true;
  std::string anchor = "sacrum";
  double min_fraction = 0.3;
  bool fill_holes = true, reorder = true;
  static void declare(ParamSet<AnatomyOptions>& s);
};
StageDescription refine_description();

class Refine : public StageWith<AnatomyOptions> {
 public:
  using StageWith::StageWith;
  CasePtr process(const CasePtr& in) override;
};

}  // namespace spineparse::plugins::refine
