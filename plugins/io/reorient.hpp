// io.reorient / io.restore_orientation — the networks see volumes in the orientation their
// model was trained in; the results go back to the input's own grid.
//
// io.reorient
//   Reads:   image (and mask when present) [D,H,W], the case geometry.
//   Writes:  image, mask permuted and flipped (exact, no resampling) to the model's axis codes,
//            the geometry of that grid; the typed value io.grid (GridHistory, grid_history.hpp:
//            how to go back); attrs orientation (the input's closest axis codes),
//            orientation_model, orientation_action (what was done, for run.json).
//   Params:  weights: a weights file whose metadata names the model's orientation (train and
//            import-checkpoint --orientation record it); orientation: axis codes that override
//            it, or "as_stored". Without either (or a model that records none) volumes are used
//            as stored, the original's behaviour, said once on stderr and per case.
//            resample: off | auto (default) | always: resample the slice axis to the model's
//            median training slice spacing (thick slices as the average of the thin ones they
//            cover), auto only when the case's slice spacing lies outside the model's training
//            range; the input's mask is kept aside (in the case's GridHistory) and
//            io.restore_orientation puts the labels back on the input's slices (nearest slice:
//            each input slice takes the label of the model slice that covers its centre).
//            range_tolerance: how far (relative) outside the 5-95 % training range a property may
//            lie before it is flagged (default 0.25). Every property outside the model's training
//            range (weights metadata "training_range": slice and in-plane spacing, slice count,
//            field of view) is a warning on the case (run.json "warnings", the report).
//   Errors:  a series whose slices are not in the model's plane (an axial series for a sagittal
//            model): the thickest axis (spacing > 1.5 x the others) must run along the model's
//            slice axis. Concurrency: parallel.
//
// io.restore_orientation
//   Every field whose last three axes are the reoriented grid [D,H,W] (labels, probabilities,
//   image, mask, ...) and the geometry go back to the input's grid: first to the input's slices
//   when io.reorient resampled them (integer fields by nearest slice, others linearly; the mask
//   is the input's own, kept aside), then to the input's orientation. A no-op for cases io.reorient
//   left as stored. Put it before the writers and reports.
//
//   {"id": "reorient", "stage": "io.reorient", "params": {"weights":
//   "../models/demo_gcsn.safetensors"}}
//   {"id": "restore", "stage": "io.restore_orientation"}
#pragma once

#include <atomic>

#include "grid_history.hpp"
#include "io/training_range.hpp"
#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::io {

struct ReorientOptions {
  static constexpr const char* kKind = "io.reorient";
  std::string weights, orientation;
  std::string resample = "auto";
  double range_tolerance = 0.25;
  static void declare(ParamSet<ReorientOptions>& s);
};
StageDescription reorient_description();
StageAttributes reorient_attributes();
StageDescription restore_orientation_description();
StageAttributes restore_orientation_attributes();

class Reorient : public StageWith<ReorientOptions> {
 public:
  using StageWith::StageWith;
  void open(const StageContext& ctx) override;
  CasePtr process(const CasePtr& in) override;

 private:
  void orient(const Case& in, Case& out, GridHistory& history) const;
  void check_and_resample(Case& c, GridHistory& history) const;

  std::string target_;  // the model's axis codes; "" = as stored
  std::string why_as_stored_;
  spineparse::io::TrainingRange range_;  // empty: the model records none
  std::string resample_;
  double tolerance_ = 0.25;
};

struct RestoreOrientationOptions {
  static constexpr const char* kKind = "io.restore_orientation";
  static void declare(ParamSet<RestoreOrientationOptions>&) {}
};

class RestoreOrientation : public StageWith<RestoreOrientationOptions> {
 public:
  using StageWith::StageWith;
  CasePtr process(const CasePtr& in) override;
};

}  // namespace spineparse::plugins::io
