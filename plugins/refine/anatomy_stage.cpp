#include "anatomy_stage.hpp"

namespace spineparse::plugins::refine {

using namespace spineparse::refine;  // the library floor this group builds on

void AnatomyOptions::declare(ParamSet<AnatomyOptions>& s) {
  using O = AnatomyOptions;
  s.add(&O::enabled, "enabled",
        "false: pass the labels through unchanged (labels_unrefined is still written)");
  s.add(&O::anchor, "anchor",
        "sacrum: the most caudal structure the networks call S is S and the levels above it are "
        "counted (repairs level shifts; without one, as none); none: label agreement alone")
      .one_of({"sacrum", "none"});
  s.add(&O::min_fraction, "min_fraction",
        "components smaller than this fraction of their label's largest are fragments")
      .range(0, 1);
  s.add(&O::fill_holes, "fill_holes", "fill background enclosed by a structure in a slice");
  s.add(&O::reorder, "reorder", "enforce the order along the spine");
}

StageDescription refine_description() {
  StageDescription d = describe<AnatomyOptions>(
      "Anatomical graph refinement: components, spine order (S, L5/S, L5, ...), fragments, holes");
  d.reads = {{"labels", false, "", "uint8", "D,H,W"}};
  d.writes = {{"labels", false, "refined", "uint8", "D,H,W"},
              {"labels_unrefined", false, "the input labels", "uint8", "D,H,W"}};
  return d;
}

CasePtr Refine::process(const CasePtr& in) {
  auto labels = in->get("labels");
  if (!options_.enabled) {
    auto out = in->derive();
    out->set("labels_unrefined", labels);
    return out;
  }
  auto refined = std::make_shared<NdArray>(*labels);  // a copy: the input stays as labels_unrefined
  RefineOptions o;
  o.anchor_sacrum = options_.anchor == "sacrum";
  o.min_fraction = options_.min_fraction;
  o.fill_holes = options_.fill_holes;
  o.reorder = options_.reorder;
  o.spacing_h = in->geometry().spacing[0];  // array axes H and W are the geometry's first two
  o.spacing_w = in->geometry().spacing[1];
  RefineReport r = refine_labels(*refined, o);
  auto out = in->derive();
  out->set("labels_unrefined", labels);
  out->set("labels", refined);
  out->set_metric("refine_changed_voxels", static_cast<double>(r.changed_voxels));
  out->set_metric("refine_relabelled", r.relabelled);
  out->set_metric("refine_fragments", r.fragments);
  return out;
}

}  // namespace spineparse::plugins::refine
