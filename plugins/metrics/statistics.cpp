#include "statistics.hpp"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "confidence_field.hpp"
#include "file_intensities.hpp"
#include "metrics/scores.hpp"
#include "metrics/statistics.hpp"
#include "spineparse/files.hpp"

namespace spineparse::plugins::metrics {

using namespace spineparse::metrics;  // the library floor this group builds on
namespace fs = std::filesystem;

void StatisticsOptions::declare(ParamSet<StatisticsOptions>& s) {
  using O = StatisticsOptions;
  s.add(&O::folder, "folder", "sub-folder of the output for statistics.csv");
}

StageDescription statistics_description() {
  StageDescription d = describe<StatisticsOptions>(
      "Per-structure voxels, volume, mean/median MR intensity and centroid of every case "
      "(no mask needed): statistics.csv");
  d.reads = {{"labels", false, "", "uint8", "D,H,W"},
             {"image", false, "", "float32", "D,H,W"},
             plugins::io::normalisation_read("to report the file's intensities"),
             confidence_read("the confidence column")};
  return d;
}

std::string Statistics::path_for(const std::string& id, const std::string& output_dir) const {
  return (fs::path(output_dir) / options_.folder / "statistics" / (id + ".csv")).string();
}

CasePtr Statistics::process(const CasePtr& in) {
  auto stats = structure_statistics(*in->get("labels"), *in->get("image"), in->geometry(),
                                    file_rescale(*in));
  if (const auto conf = confidence_of(*in))
    for (auto& s : stats) s.confidence = conf->of(s.label);
  write_file_atomic(file_of(in->id()), statistics_csv_rows(in->id(), stats));
  int found = 0;
  double mm3 = 0;
  for (const auto& s : stats) {
    found += s.voxels > 0;
    mm3 += s.volume_mm3;
  }
  auto out = in->derive();
  out->set_metric("structures_found", found);
  out->set_metric("labelled_volume_ml", mm3 / 1000.0);
  return out;
}

// statistics.csv over the whole cohort as run.json lists it (cases done now and those a resumed
// or sharded run recorded earlier), from each case's rows.
void Statistics::after_run(const std::string& run_json_path, const StageContext& ctx) {
  std::string csv = statistics_csv_header();
  for (const auto& id : recorded_case_ids(run_json_path)) {
    const std::string path = path_for(id, ctx.output_dir);
    if (fs::exists(path)) csv += read_file(path);
  }
  write_file_atomic((fs::path(ctx.output_dir) / options_.folder / "statistics.csv").string(), csv);
}

}  // namespace spineparse::plugins::metrics
