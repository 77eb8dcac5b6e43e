#include "io/training_range.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "io/case_attributes.hpp"
#include "io/dataset.hpp"
#include "io/orientation.hpp"
#include "io/volume_io.hpp"

namespace spineparse::io {

namespace {

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q / 100.0 * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace

VolumeProperties volume_properties(const Geometry& g, const std::array<std::int64_t, 3>& ijk) {
  return {{"slice_spacing_mm", g.spacing[2]},
          {"inplane_spacing_mm", std::max(g.spacing[0], g.spacing[1])},
          {"slices", static_cast<double>(ijk[2])},
          {"fov_h_mm", static_cast<double>(ijk[0]) * g.spacing[0]},
          {"fov_w_mm", static_cast<double>(ijk[1]) * g.spacing[1]}};
}

TrainingRange training_range_of(const std::vector<VolumeProperties>& cases,
                                const std::string& source) {
  if (cases.empty()) throw std::runtime_error("training range: no cases");
  TrainingRange r;
  r.cases = static_cast<int>(cases.size());
  r.source = source;
  for (const auto& [name, unused] : cases.front()) {
    std::vector<double> v;
    for (const auto& c : cases) v.push_back(c.at(name));
    r.properties[name] = {percentile(v, 50), percentile(v, 5), percentile(v, 95)};
  }
  return r;
}

TrainingRange measure_training_range(const std::string& dir,
                                     const std::string& model_orientation) {
  std::vector<VolumeProperties> cases;
  for (const auto& seed : list_dataset(dir, "auto")) {
    if (seed.attrs.count(kSkippedAttr)) continue;
    auto it = seed.attrs.find(kImagePathAttr);
    if (it == seed.attrs.end())
      throw std::runtime_error("case " + seed.id + " in " + dir +
                               " is not a volume file (DICOM series: convert them to NIfTI to "
                               "measure a training range)");
    const auto v = read_image(it->second);
    Geometry g = v.geometry;
    std::array<std::int64_t, 3> ijk{v.data->dim(1), v.data->dim(2), v.data->dim(0)};
    if (!model_orientation.empty()) {  // the geometry and sizes only: no voxel moves
      const Reorientation r = plan_reorientation(axis_codes(g), model_orientation);
      g = reorient(g, ijk, r);
      const auto before = ijk;
      for (std::size_t t = 0; t < 3; ++t)
        ijk[t] = before[static_cast<std::size_t>(r.source[t])];
    }
    cases.push_back(volume_properties(g, ijk));
  }
  if (cases.empty()) throw std::runtime_error(dir + " holds no cases to measure");
  return training_range_of(cases, "measured on " + std::to_string(cases.size()) + " cases of " +
                                      dir);
}

TrainingRange original_data_range() {
  TrainingRange r;
  r.source =
      "documented defaults for MRSpineSeg (not measured: pass the training data to measure them)";
  r.properties = {{"slice_spacing_mm", {4.0, 3.3, 4.8}},
                  {"inplane_spacing_mm", {0.45, 0.3, 0.75}},
                  {"slices", {13, 12, 15}},
                  {"fov_h_mm", {360, 280, 440}},
                  {"fov_w_mm", {360, 280, 440}}};
  return r;
}

std::string TrainingRange::to_json() const {
  nlohmann::json j = {{"cases", cases}, {"source", source}};
  for (const auto& [name, p] : properties)
    j["properties"][name] = {{"median", p.median}, {"p5", p.p5}, {"p95", p.p95}};
  return j.dump();
}

TrainingRange TrainingRange::from_json(const std::string& text, const std::string& where) {
  TrainingRange r;
  try {
    const auto j = nlohmann::json::parse(text);
    r.cases = j.value("cases", 0);
    r.source = j.value("source", "");
    for (const auto& [name, p] : j.at("properties").items()) {
      PropertyRange pr{p.at("median").get<double>(), p.at("p5").get<double>(),
                       p.at("p95").get<double>()};
      if (!std::isfinite(pr.median) || !std::isfinite(pr.p5) || !std::isfinite(pr.p95) ||
          pr.p5 > pr.median || pr.median > pr.p95 || pr.p5 <= 0)
        throw std::runtime_error("property " + name + " is not 0 < p5 <= median <= p95");
      r.properties[name] = pr;
    }
  } catch (const std::exception& e) {
    throw std::runtime_error(where + ": " + kTrainingRangeKey + " is not a training range (" +
                             e.what() + ")");
  }
  return r;
}

bool outside(const PropertyRange& r, double value, double tolerance) {
  return value < r.p5 / (1 + tolerance) || value > r.p95 * (1 + tolerance);
}

std::vector<RangeFinding> check_range(const TrainingRange& r, const VolumeProperties& p,
                                      double tolerance) {
  std::vector<RangeFinding> out;
  for (const auto& [name, range] : r.properties) {
    auto it = p.find(name);
    if (it == p.end() || !outside(range, it->second, tolerance)) continue;
    RangeFinding f{name, it->second, range, ""};
    f.message = name + " " + number(it->second) + " is outside the model's training range (" +
                number(range.p5) + " to " + number(range.p95) + ", median " +
                number(range.median) + (r.cases ? ", over " + std::to_string(r.cases) + " cases" : "") +
                ")";
    out.push_back(f);
  }
  return out;
}

}  // namespace spineparse::io
