// io.reorient / io.restore_orientation — the networks see volumes in the orientation their
// model was trained in; the results go back to the input's own grid.
//
// io.reorient
//   Reads:   image (and mask when present) [D,H,W], the case geometry.
//   Writes:  image, mask permuted and flipped (exact, no resampling) to the model's axis codes,
//            the geometry of that grid; attrs orientation (the input's closest axis codes),
//            orientation_model, orientation_action (what was done, for run.json).
//   Params:  weights: a weights file whose metadata names the model's orientation (train and
//            import-checkpoint --orientation record it); orientation: axis codes that override
//            it, or "as_stored". Without either (or a model that records none) volumes are used
//            as stored, the original's behaviour, said once on stderr and per case.
//   Errors:  a series whose slices are not in the model's plane (an axial series for a sagittal
//            model): the thickest axis (spacing > 1.5 x the others) must run along the model's
//            slice axis. Concurrency: parallel.
//
// io.restore_orientation
//   Every field whose last three axes are the reoriented grid [D,H,W] (labels, probabilities,
//   image, mask, ...) and the geometry go back to the input's grid. A no-op for cases io.reorient
//   left as stored. Put it before the writers and reports.
//
//   {"id": "reorient", "stage": "io.reorient", "params": {"weights":
//   "../models/demo_gcsn.safetensors"}}
//   {"id": "restore", "stage": "io.restore_orientation"}
#pragma once

#include <atomic>

#include "spineparse/stage.hpp"

namespace spineparse::io {

StageDescription reorient_description();
StageDescription restore_orientation_description();

class Reorient : public Stage {
 public:
  explicit Reorient(const Params& p) : params_(p) {}
  void open(const StageContext& ctx) override;
  CasePtr process(const CasePtr& in) override;

 private:
  Params params_;
  std::string target_;  // the model's axis codes; "" = as stored
  std::string why_as_stored_;
};

class RestoreOrientation : public Stage {
 public:
  explicit RestoreOrientation(const Params&) {}
  CasePtr process(const CasePtr& in) override;
};

}  // namespace spineparse::io
