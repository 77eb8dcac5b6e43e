#include "reorient.hpp"

#include <cstdio>
#include <map>
#include <sstream>
#include <stdexcept>

#include "io/header.hpp"
#include "io/orientation.hpp"
#include "io/weights_metadata.hpp"

namespace spineparse::io {

namespace {

std::string encode(const Geometry& g) {
  std::ostringstream s;
  s.precision(17);
  for (double v : g.spacing) s << v << ' ';
  for (double v : g.origin) s << v << ' ';
  for (double v : g.direction) s << v << ' ';
  return s.str();
}

Geometry decode(const std::string& text) {
  std::istringstream s(text);
  Geometry g;
  for (double& v : g.spacing) s >> v;
  for (double& v : g.origin) s >> v;
  for (double& v : g.direction) s >> v;
  if (!s) throw std::runtime_error("io.restore_orientation: unreadable geometry_as_stored");
  return g;
}

std::string shape_of(const NdArray& a) {
  const std::size_t n = a.ndim();
  return std::to_string(a.dim(n - 3)) + "," + std::to_string(a.dim(n - 2)) + "," +
         std::to_string(a.dim(n - 1));
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

StageDescription reorient_description() {
  StageDescription d;
  d.kind = "io.reorient";
  d.summary = "Permute and flip (exactly) each volume to the orientation the model was trained in";
  d.params = {
      {"weights", ParamType::kPath, ParamValue(std::string()), false,
       "weights file whose metadata names the model's orientation (e.g. the coarse network's)"},
      {"orientation", ParamType::kString, ParamValue(std::string()), false,
       "axis codes to use instead (e.g. PIL), or as_stored"},
  };
  d.reads = {{"image", false, "", "", "D,H,W"}, {"mask", true, "", "", "D,H,W"}};
  d.writes = {{"image", false, "in the model's orientation", "", "D,H,W"},
              {"mask", true, "in the model's orientation", "", "D,H,W"}};
  return d;
}

StageDescription restore_orientation_description() {
  StageDescription d;
  d.kind = "io.restore_orientation";
  d.summary = "Every volume of the case back on the input's own grid (undoes io.reorient)";
  return d;
}

void Reorient::open(const StageContext& ctx) {
  const std::string given = params_.get_string("orientation");
  const std::string weights = params_.get_string("weights");
  std::string why;
  if (given == "as_stored") {
    why_as_stored_ = "orientation=as_stored";
  } else if (!given.empty()) {
    if (!valid_axis_codes(given, &why)) throw std::runtime_error("orientation " + why);
    target_ = given;
  } else if (!weights.empty()) {
    std::map<std::string, std::string> meta;
    try {
      meta = safetensors_metadata(weights);
    } catch (const std::exception& e) {  // TorchScript, random weights: no recorded orientation
      why_as_stored_ = "the model's orientation is unknown (" + std::string(e.what()) + ")";
    }
    auto it = meta.find(kOrientationKey);
    if (!why_as_stored_.empty()) {
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
}

CasePtr Reorient::process(const CasePtr& in) {
  auto out = in->derive();
  if (in->attr("warnings").find(kNoOrientationWarning) != std::string::npos) {
    out->set_attr("orientation_action", "as stored: the file records no orientation");
    return out;
  }
  const std::string codes = axis_codes(in->geometry());
  out->set_attr("orientation", codes);
  if (target_.empty()) {
    out->set_attr("orientation_action", "as stored: " + why_as_stored_);
    return out;
  }
  check_plane(*in, codes, target_);
  out->set_attr("orientation_model", target_);
  const Reorientation r = plan_reorientation(codes, target_);
  if (r.identity()) {
    out->set_attr("orientation_action", "none: stored as " + target_);
    return out;
  }
  const auto img = in->get("image");
  const std::array<std::int64_t, 3> ijk{img->dim(1), img->dim(2), img->dim(0)};
  out->set_attr("geometry_as_stored", encode(in->geometry()));
  out->set_geometry(reorient(in->geometry(), ijk, r));
  auto moved = reorient(*img, r);
  out->set_attr("orientation_grid", shape_of(*moved));
  out->set("image", moved);
  if (in->has("mask")) out->set("mask", reorient(*in->get("mask"), r));
  out->set_attr("orientation_action", "reoriented " + codes + " -> " + target_ + " (" +
                                          r.describe() + "); results restored to " + codes);
  return out;
}

CasePtr RestoreOrientation::process(const CasePtr& in) {
  const std::string grid = in->attr("orientation_grid");
  if (grid.empty()) return in;  // stored as the model's, or used as stored
  const Reorientation back =
      plan_reorientation(in->attr("orientation_model"), in->attr("orientation"));
  auto out = in->derive();
  for (const auto& name : in->field_names()) {
    const auto a = in->get(name);
    if (a->ndim() >= 3 && shape_of(*a) == grid) out->set(name, reorient(*a, back));
  }
  out->set_geometry(decode(in->attr("geometry_as_stored")));
  for (const char* k : {"orientation_grid", "geometry_as_stored"}) out->erase_attr(k);
  return out;
}

}  // namespace spineparse::io
