#include "reorient.hpp"

#include <cstdio>
#include <map>
#include <stdexcept>

#include "io/case_attributes.hpp"
#include "io/header.hpp"
#include "io/orientation.hpp"
#include "io/slice_axis.hpp"
#include "io/weights_metadata.hpp"

namespace spineparse::plugins::io {

using namespace spineparse::io;  // the library floor this group builds on

namespace {

std::string mm(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// The slices must lie in the model's plane: the axis with clearly the largest spacing (the
// acquisition's slice direction) runs along the model's slice axis (its k).
void check_plane(const Case& c, const std::string& codes, const std::string& model) {
  const auto& sp = c.geometry().spacing;
  int thick = 0;
  for (int a = 1; a < 3; ++a)
    if (sp[static_cast<std::size_t>(a)] > sp[static_cast<std::size_t>(thick)]) thick = a;
  double others = 0;
  for (int a = 0; a < 3; ++a)
    if (a != thick) others = std::max(others, sp[static_cast<std::size_t>(a)]);
  if (!(sp[static_cast<std::size_t>(thick)] > 1.5 * others)) return;  // near-isotropic: any plane
  const char along = codes[static_cast<std::size_t>(thick)];
  if (axis_along(std::string(1, model[2]), along) == 0) return;
  static const char* axis = "ijk";
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.2f", sp[static_cast<std::size_t>(thick)]);
  throw std::runtime_error("case " + c.id() + " is a" + (plane_of(along) == "axial" ? "n " : " ") +
                           plane_of(along) + " series (its slices, " + buf +
                           " mm apart along file axis " + axis[thick] + ", are stacked along " +
                           std::string(1, along) + "; axis codes " + codes +
                           "), but the model segments " + plane_of(model[2]) + " slices");
}

}  // namespace

void ReorientOptions::declare(ParamSet<ReorientOptions>& s) {
  using O = ReorientOptions;
  s.add(&O::weights, "weights",
        "weights file whose metadata names the model's orientation (e.g. the coarse network's)")
      .path();
  s.add(&O::orientation, "orientation", "axis codes to use instead (e.g. PIL), or as_stored");
  s.add(&O::resample, "resample",
        "resample the slice axis to the model's median training slice spacing: off, auto (when "
        "the case's lies outside the training range), always")
      .one_of({"off", "auto", "always"});
  s.add(&O::range_tolerance, "range_tolerance",
        "relative margin around the model's 5-95 % training range before a property is flagged")
      .range(0, 10);
}

StageDescription reorient_description() {
  StageDescription d = describe<ReorientOptions>(
      "Permute and flip (exactly) each volume to the orientation the model was trained in");
  d.reads = {{"image", false, "", "", "D,H,W"}, {"mask", true, "", "", "D,H,W"}};
  d.writes = {{"image", false, "in the model's orientation", "", "D,H,W"},
              {"mask", true, "in the model's orientation", "", "D,H,W"}};
  return d;
}

StageAttributes reorient_attributes() {
  StageAttributes a;
  a.reads = {{kWarningsAttr, true, "a volume whose file records no orientation is used as stored"}};
  a.writes = {grid_history_use("how the case left the input's grid, for io.restore_orientation"),
              {"orientation", true, "the input's closest axis codes"},
              {"orientation_model", true, "the model's axis codes"},
              {"orientation_action", false, "what was done about the orientation"},
              {"resample_action", true, "how the slice axis was resampled"},
              {kWarningsAttr, true, "properties outside the model's training range"}};
  return a;
}

StageDescription restore_orientation_description() {
  return describe<RestoreOrientationOptions>(
      "Every volume of the case back on the input's own grid (undoes io.reorient)");
}

StageAttributes restore_orientation_attributes() {
  StageAttributes a;
  a.reads = {grid_history_use("the grid to restore, from io.reorient (removed from the case)")};
  return a;
}

void Reorient::open(const StageContext& ctx) {
  const std::string given = options_.orientation;
  const std::string weights = options_.weights;
  resample_ = options_.resample;
  tolerance_ = options_.range_tolerance;
  std::map<std::string, std::string> meta;
  std::string unreadable;
  if (!weights.empty()) {
    try {
      meta = safetensors_metadata(weights);
    } catch (const std::exception& e) {  // TorchScript, random weights: nothing recorded
      unreadable = e.what();
    }
  }
  std::string why;
  if (given == "as_stored") {
    why_as_stored_ = "orientation=as_stored";
  } else if (!given.empty()) {
    if (!valid_axis_codes(given, &why)) throw std::runtime_error("orientation " + why);
    target_ = given;
  } else if (!weights.empty()) {
    auto it = meta.find(kOrientationKey);
    if (!unreadable.empty()) {
      why_as_stored_ = "the model's orientation is unknown (" + unreadable + ")";
    } else if (it == meta.end()) {
      why_as_stored_ = weights + " records no orientation";
    } else if (!valid_axis_codes(it->second, &why)) {
      throw std::runtime_error(weights + ": orientation " + why);
    } else {
      target_ = it->second;
    }
  } else {
    why_as_stored_ = "neither weights nor orientation is given";
  }
  if (target_.empty())
    std::fprintf(stderr,
                 "%s: %s; volumes are used as stored (the original's behaviour), whatever their "
                 "orientation\n",
                 ctx.node_id.c_str(), why_as_stored_.c_str());
  if (auto it = meta.find(kTrainingRangeKey); it != meta.end())
    range_ = TrainingRange::from_json(it->second, weights);
  const bool slice_range = range_.properties.count("slice_spacing_mm") != 0;
  if (resample_ == "always" && !slice_range)
    throw std::runtime_error("resample=always needs the model's training slice spacing, and " +
                             (weights.empty() ? std::string("no weights are given")
                                              : weights + " records no training_range") +
                             " (train and import-checkpoint record it; spineparse model-info "
                             "--training-data adds it)");
  if (range_.empty())
    std::fprintf(stderr,
                 "%s: the model records no training range (%s); scans are not checked against "
                 "it\n",
                 ctx.node_id.c_str(), weights.empty() ? "no weights given" : weights.c_str());
}

CasePtr Reorient::process(const CasePtr& in) {
  auto out = in->derive();
  GridHistory history;
  orient(*in, *out, history);
  check_and_resample(*out, history);
  out->set_payload(kGridHistoryValue, std::make_shared<const GridHistory>(std::move(history)));
  return out;
}

void Reorient::orient(const Case& in, Case& out, GridHistory& history) const {
  if (in.attr(kWarningsAttr).find(kNoOrientationWarning) != std::string::npos) {
    out.set_attr("orientation_action", "as stored: the file records no orientation");
    return;
  }
  const std::string codes = axis_codes(in.geometry());
  out.set_attr("orientation", codes);
  if (target_.empty()) {
    out.set_attr("orientation_action", "as stored: " + why_as_stored_);
    return;
  }
  check_plane(in, codes, target_);
  out.set_attr("orientation_model", target_);
  const Reorientation r = plan_reorientation(codes, target_);
  if (r.identity()) {
    out.set_attr("orientation_action", "none: stored as " + target_);
    return;
  }
  const auto img = in.get("image");
  const std::array<std::int64_t, 3> ijk{img->dim(1), img->dim(2), img->dim(0)};
  out.set_geometry(reorient(in.geometry(), ijk, r));
  auto moved = reorient(*img, r);
  history.reoriented =
      GridHistory::Reoriented{plan_reorientation(target_, codes), grid_of(*moved), in.geometry()};
  out.set("image", moved);
  if (in.has("mask")) out.set("mask", reorient(*in.get("mask"), r));
  out.set_attr("orientation_action", "reoriented " + codes + " -> " + target_ + " (" +
                                         r.describe() + "); results restored to " + codes);
}

// The case (on the grid the networks will see) against the model's training range; the slice
// axis resampled to the model's slice spacing when resample_ asks for it.
void Reorient::check_and_resample(Case& c, GridHistory& history) const {
  if (range_.empty()) return;
  auto props = [](const Case& k) {
    const auto img = k.get("image");
    return volume_properties(k.geometry(), {img->dim(1), img->dim(2), img->dim(0)});
  };
  const auto before = props(c);
  const auto slice = range_.properties.find("slice_spacing_mm");
  bool resample = false;
  if (slice != range_.properties.end()) {
    resample =
        resample_ == "always" ||
        (resample_ == "auto" && outside(slice->second, before.at("slice_spacing_mm"), tolerance_));
  }
  SlicePlan plan;
  if (resample) {
    plan = plan_slices(c.get("image")->dim(0), c.geometry().spacing[2], slice->second.median);
    resample = !plan.identity();
  }
  if (!resample) {
    for (const auto& f : check_range(range_, before, tolerance_))
      add_warning(c, f.message + (f.property == "slice_spacing_mm" && resample_ == "off"
                                      ? " (resample=off: the slices are used as they are)"
                                      : ""));
    return;
  }
  c.set("image", resample_slices(*c.get("image"), plan));
  GridHistory::Resampled r{plan, grid_of(*c.get("image")), c.geometry(), nullptr};
  if (c.has("mask")) {
    r.mask_before = c.get("mask");
    c.set("mask", resample_label_slices(*c.get("mask"), plan));
  }
  c.set_geometry(resample_geometry(c.geometry(), plan));
  history.resampled = std::move(r);
  const std::string action =
      "slice axis resampled (resample=" + resample_ + "): " + std::to_string(plan.from) +
      " slices " + mm(plan.from_spacing) + " mm apart -> " + std::to_string(plan.to) + " slices " +
      mm(plan.to_spacing) + " mm apart; labels back by nearest slice";
  c.set_attr("resample_action", action);
  for (const auto& f : check_range(range_, before, tolerance_))
    if (f.property == "slice_spacing_mm") add_warning(c, f.message + "; " + action);
  for (const auto& f : check_range(range_, props(c), tolerance_))
    if (f.property != "slice_spacing_mm") add_warning(c, f.message + " (after resampling)");
}

namespace {

// The fields on the resampled grid back on the input's slices; the mask is the input's own (the
// image is the networks' input, normalised by later stages, so it is resampled back like the rest).
void undo_resample(Case& c, const GridHistory::Resampled& r) {
  const SlicePlan back = inverse(r.plan);
  for (const auto& name : c.field_names()) {
    const auto a = c.get(name);
    if (a->ndim() < 3 || grid_of(*a) != r.grid) continue;
    const bool integer = a->dtype() != DType::kFloat32 && a->dtype() != DType::kFloat64;
    c.set(name, integer ? resample_label_slices(*a, back) : resample_slices(*a, back));
  }
  if (r.mask_before) c.set("mask", r.mask_before);
  c.set_geometry(r.before);
}

}  // namespace

CasePtr RestoreOrientation::process(const CasePtr& in) {
  const auto history = std::dynamic_pointer_cast<const GridHistory>(in->payload(kGridHistoryValue));
  if (!history)
    throw std::runtime_error("case " + in->id() + ": its value '" + kGridHistoryValue +
                             "' is not io.reorient's GridHistory");
  auto out = in->derive();
  out->erase_payload(kGridHistoryValue);
  if (history->resampled) undo_resample(*out, *history->resampled);
  if (!history->reoriented) return out;
  const auto& r = *history->reoriented;
  for (const auto& name : out->field_names()) {
    const auto a = out->get(name);
    if (a->ndim() >= 3 && grid_of(*a) == r.grid) out->set(name, reorient(*a, r.back));
  }
  out->set_geometry(r.as_stored);
  return out;
}

}  // namespace spineparse::plugins::io
