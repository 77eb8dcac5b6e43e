#include "measure.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "confidence_field.hpp"
#include "file_intensities.hpp"
#include "metrics/case_attributes.hpp"
#include "metrics/measure.hpp"
#include "metrics/scores.hpp"
#include "spineparse/files.hpp"

namespace spineparse::plugins::metrics {

using namespace spineparse::metrics;  // the library floor this group builds on
namespace fs = std::filesystem;

void MeasureOptions::declare(ParamSet<MeasureOptions>& s) {
  using O = MeasureOptions;
  s.add(&O::folder, "folder", "sub-folder of the output for the measurement files");
}

StageDescription measure_description() {
  StageDescription d = describe<MeasureOptions>(
      "Per-level heights, depth, wedge/biconcavity, Genant grade, disc height index, segmental "
      "angles, L1-S1 lordosis (no mask needed): measurements.csv, alignment.csv");
  d.reads = {{"labels", false, "", "uint8", "D,H,W"},
             {"image", true, "intensities and signal ratios", "float32", "D,H,W"},
             plugins::io::normalisation_read("to report the file's intensities"),
             confidence_read("to mark the values of unreliable structures")};
  return d;
}

StageAttributes measure_attributes() {
  StageAttributes a;
  a.writes = {{kMeasurementsAttr, false, "the case's measurement record (JSON)"}};
  return a;
}

std::string Measure::path_for(const std::string& id, const std::string& output_dir) const {
  return (fs::path(output_dir) / options_.folder / "cases" / (id + ".json")).string();
}

CasePtr Measure::process(const CasePtr& in) {
  const NdArrayPtr image = in->has("image") ? in->get("image") : nullptr;
  auto m =
      measure_case(in->id(), *in->get("labels"), in->geometry(), image.get(), file_rescale(*in));
  if (const auto conf = confidence_of(*in)) apply_confidence(m, conf->value, conf->is_reliable);
  write_file_atomic(file_of(in->id()), case_measurement_to_json(m) + "\n");
  int measured = 0, grade = -1;
  for (const auto& l : m.levels) {
    if (!l.reliable) continue;  // run.json's numbers are the trusted ones
    measured += l.superior.valid;
    grade = std::max(grade, l.height_loss_grade);
  }
  auto out = in->derive();
  out->set_attr(kMeasurementsAttr, file_of(in->id()));
  out->set_metric("levels_measured", measured);
  if (grade >= 0) out->set_metric("height_loss_grade_max", grade);
  if (!std::isnan(m.lordosis_l1_s1_deg) && m.lordosis_reliable())
    out->set_metric("lordosis_l1_s1_deg", m.lordosis_l1_s1_deg);
  return out;
}

void Measure::after_run(const std::string& run_json_path, const StageContext& ctx) {
  std::vector<CaseMeasurement> cases;
  for (const auto& id : recorded_case_ids(run_json_path)) {
    const std::string path = path_for(id, ctx.output_dir);
    if (fs::exists(path)) cases.push_back(case_measurement_from_json(read_file(path)));
  }
  if (cases.empty()) return;
  write_measurement_reports(cases, (fs::path(ctx.output_dir) / options_.folder).string());
}

}  // namespace spineparse::plugins::metrics
