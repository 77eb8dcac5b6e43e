#include "evaluate.hpp"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "spineparse/files.hpp"

namespace spineparse::plugins::metrics {

using namespace spineparse::metrics;  // the library floor this group builds on
namespace fs = std::filesystem;

void EvaluateOptions::declare(ParamSet<EvaluateOptions>& s) {
  using O = EvaluateOptions;
  s.add(&O::folder, "folder", "sub-folder of the output for the reports");
  s.add(&O::distances, "distances", "compute ASSD and HD95 (mm)");
}

StageDescription evaluate_description() {
  StageDescription d = describe<EvaluateOptions>(
      "Dice, precision, recall (as the original), ASSD and HD95 per structure; cases.csv and "
      "summary.json");
  d.reads = {{"labels", false, "", "uint8", "D,H,W"},
             {"mask", true, "ground truth", "uint8", "D,H,W"},
             {"labels_unrefined", true, "", "uint8", "D,H,W"}};
  return d;
}

CasePtr Evaluate::process(const CasePtr& in) {
  if (!in->has("mask")) return in;  // nothing to score against
  CaseScores cs;
  cs.id = in->id();
  const auto sp = spacing_dhw(in->geometry());
  cs.structures =
      score_case(*in->get("labels"), *in->get("mask"), sp, options_.distances, &cs.confusion);
  if (in->has("labels_unrefined")) {
    cs.dice_before =
        case_mean(score_case(*in->get("labels_unrefined"), *in->get("mask"), sp, false),
                  &StructureScore::dice, "all");
  }
  auto out = in->derive();
  out->set_metric("dice_all", case_mean(cs.structures, &StructureScore::dice, "all"));
  out->set_metric("dice_vertebrae", case_mean(cs.structures, &StructureScore::dice, "vertebrae"));
  out->set_metric("dice_discs", case_mean(cs.structures, &StructureScore::dice, "discs"));
  out->set_metric("assd_mm", case_mean(cs.structures, &StructureScore::assd_mm, "all"));
  out->set_metric("hd95_mm", case_mean(cs.structures, &StructureScore::hd95_mm, "all"));
  int missed = 0;
  for (const auto& s : cs.structures) missed += s.truth_voxels > 0 && s.pred_voxels == 0;
  out->set_metric("missed", missed);
  if (cs.dice_before >= 0) out->set_metric("dice_before_refinement", cs.dice_before);
  write_file_atomic(file_of(cs.id), case_scores_to_json(cs) + "\n");
  return out;
}

// A case has a record only when it has a mask to score against, which its seed does not tell
// (read_mask may be off): --resume scores every case again rather than look for records.
bool Evaluate::writes_file_for(const CaseSeed&) const { return false; }

std::string Evaluate::path_for(const std::string& id, const std::string& output_dir) const {
  return (fs::path(output_dir) / options_.folder / "cases" / (id + ".json")).string();
}

// The reports cover the whole cohort as run.json lists it: the cases scored now and those a
// resumed run skipped (scored by an earlier run), each from its record in <folder>/cases/.
void Evaluate::after_run(const std::string& run_json_path, const StageContext& ctx) {
  std::vector<CaseScores> scores;
  for (const auto& id : recorded_case_ids(run_json_path)) {
    const std::string path = path_for(id, ctx.output_dir);
    if (fs::exists(path)) scores.push_back(case_scores_from_json(read_file(path)));
  }
  if (scores.empty()) return;
  write_reports(scores, (fs::path(ctx.output_dir) / options_.folder).string());
}

}  // namespace spineparse::plugins::metrics
