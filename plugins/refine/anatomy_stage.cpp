#include "anatomy_stage.hpp"

namespace spineparse::refine {

StageDescription refine_description() {
  StageDescription d;
  d.kind = "refine.anatomy";
  d.summary =
      "Anatomical graph refinement: components, spine order (S, L5/S, L5, ...), fragments, holes";
  d.params = {
      {"enabled", ParamType::kBool, ParamValue(true), false,
       "false: pass the labels through unchanged (labels_unrefined is still written)"},
      {"anchor",
       ParamType::kString,
       ParamValue(std::string("sacrum")),
       false,
       "sacrum: the most caudal vertebra is S (repairs level shifts); none: label agreement alone",
       {"sacrum", "none"}},
      {"min_fraction",
       ParamType::kFloat,
       ParamValue(0.3),
       false,
       "components smaller than this fraction of their label's largest are fragments",
       {},
       0.0,
       1.0},
      {"fill_holes", ParamType::kBool, ParamValue(true), false,
       "fill background enclosed by a structure in a slice"},
      {"reorder", ParamType::kBool, ParamValue(true), false, "enforce the order along the spine"},
  };
  d.reads = {{"labels", false, "", "uint8", "D,H,W"}};
  d.writes = {{"labels", false, "refined", "uint8", "D,H,W"},
              {"labels_unrefined", false, "the input labels", "uint8", "D,H,W"}};
  return d;
}

Refine::Refine(const Params& p) : enabled_(p.get_bool("enabled")) {
  options_.anchor_sacrum = p.get_string("anchor") == "sacrum";
  options_.min_fraction = p.get_float("min_fraction");
  options_.fill_holes = p.get_bool("fill_holes");
  options_.reorder = p.get_bool("reorder");
}

CasePtr Refine::process(const CasePtr& in) {
  auto labels = in->get("labels");
  if (!enabled_) {
    auto out = in->derive();
    out->set("labels_unrefined", labels);
    return out;
  }
  auto refined = std::make_shared<NdArray>(*labels);  // a copy: the input stays as labels_unrefined
  RefineReport r = refine_labels(*refined, options_);
  auto out = in->derive();
  out->set("labels_unrefined", labels);
  out->set("labels", refined);
  out->set_metric("refine_changed_voxels", static_cast<double>(r.changed_voxels));
  out->set_metric("refine_relabelled", r.relabelled);
  out->set_metric("refine_fragments", r.fragments);
  return out;
}

}  // namespace spineparse::refine
