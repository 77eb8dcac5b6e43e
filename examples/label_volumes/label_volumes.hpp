// example.label_volumes — the volume of every label of a label map, in millilitres.
//
// Inputs:  FIELD (param `field`, default "labels") uint8 [D,H,W]; the case geometry (spacing in
//          mm for the file axes H, W, D).
// Outputs: metrics volume_ml_<label> for every label > 0 present, and labelled_ml (their sum);
//          they appear in run.json with the case.
// Params:  field. Errors: a missing field or another dtype fails the case. Concurrency: parallel.
//
//   {"id": "volumes", "stage": "example.label_volumes", "params": {"field": "labels"}}
#pragma once

#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace example {

struct LabelVolumesOptions {
  static constexpr const char* kKind = "example.label_volumes";  // the kind, named once
  std::string field = "labels";
  static void declare(spineparse::ParamSet<LabelVolumesOptions>& s);
};
spineparse::StageDescription label_volumes_description();

// StageWith decodes a node's params into options_ once, when the stage is made.
class LabelVolumes : public spineparse::StageWith<LabelVolumesOptions> {
 public:
  using StageWith::StageWith;
  spineparse::CasePtr process(const spineparse::CasePtr& in) override;
};

}  // namespace example
