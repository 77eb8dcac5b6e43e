#include "qc.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "confidence_field.hpp"
#include "metrics/scores.hpp"
#include "spineparse/files.hpp"

namespace spineparse::plugins::metrics {

using namespace spineparse::metrics;  // the library floor this group builds on
namespace fs = std::filesystem;

void QcOptions::declare(ParamSet<QcOptions>& s) {
  using O = QcOptions;
  s.add(&O::calibration, "calibration",
        "the QC model's fitted weights (JSON, scripts/calibrate-qc): fitted for the networks "
        "whose results it judges")
      .existing()
      .required();
  s.add(&O::reliable_from, "reliable_from",
        "a structure with at least this confidence is reliable (its measurements are kept as "
        "such)")
      .range(0, 1);
  s.add(&O::pass_from, "pass_from",
        "a case passes with at least this score and no reason to review it")
      .range(0, 1);
  s.add(&O::fail_below, "fail_below", "a case with a lower score fails").range(0, 1);
  s.add(&O::folder, "folder", "sub-folder of the output for review.csv and the case records");
}

StageDescription qc_description() {
  StageDescription d = describe<QcOptions>(
      "Confidence per structure, a QC score and verdict (pass, review, fail) with reasons per "
      "case, and review.csv, the cohort worst first");
  d.reads = {{"labels", false, "after refinement, on the model's grid", "uint8", "D,H,W"},
             {"labels_unrefined", true, "what refinement changed", "uint8", "D,H,W"},
             {"label_probability", true, "the fine network's probability", "uint8", "D,H,W"},
             {"coarse_logits", true, "agreement with the coarse network", "float32", "C,D,h,w"}};
  d.writes = {{kConfidenceField, false, "row 0 confidence, row 1 reliable", "float32", "2,19"}};
  d.consumes = {"label_probability"};
  return d;
}

Qc::Qc(const Params& p) : CaseFileStage(p) {
  model_ = QcModel::from_json(read_file(options_.calibration), options_.calibration);
  model_.reliable_from = options_.reliable_from;
  model_.pass_from = options_.pass_from;
  model_.fail_below = options_.fail_below;
}

std::string Qc::path_for(const std::string& id, const std::string& output_dir) const {
  return (fs::path(output_dir) / options_.folder / "cases" / (id + ".json")).string();
}

StageAttributes qc_attributes() {
  StageAttributes a;
  a.reads = {
      {kWarningsAttr, true, "a case flagged outside the model's training range scores lower"}};
  a.writes = {
      {std::string(kRecordAttrPrefix) + "qc", false, "the case's QC record (run.json \"qc\")"}};
  return a;
}

CasePtr Qc::process(const CasePtr& in) {
  auto optional = [&](const char* name) { return in->has(name) ? in->get(name) : nullptr; };
  const auto unrefined = optional("labels_unrefined"), probability = optional("label_probability");
  const auto coarse = optional("coarse_logits");
  const auto& sp = in->geometry().spacing;
  const CaseSignals signals = qc_signals(*in->get("labels"), unrefined.get(), probability.get(),
                                         coarse.get(), sp, in->attr(kWarningsAttr));
  const QcResult r = assess(signals, model_);
  write_file_atomic(file_of(in->id()), qc_record_json(r, &signals) + "\n");
  StructureConfidence conf;  // in a case that fails, no structure is reliable
  for (int k = 0; k < 19; ++k) {
    conf.value[k] = r.confidence[k];
    if (!std::isnan(r.confidence[k]))
      conf.is_reliable[k] = r.verdict == "fail" ? -1.0 : r.confidence[k] >= options_.reliable_from;
  }
  auto out = in->derive();
  out->set(kConfidenceField, confidence_array(conf));
  out->set_metric("qc_score", r.score);
  out->set_attr(std::string(kRecordAttrPrefix) + "qc", qc_record_json(r, nullptr));
  return out;
}

// review.csv over the whole cohort as run.json lists it, from each case's record; a case that
// failed is listed as failing QC, with its error.
void Qc::after_run(const std::string& run_json_path, const StageContext& ctx) {
  std::vector<std::pair<std::string, QcResult>> cases;
  for (const auto& id : recorded_case_ids(run_json_path)) {
    const std::string path = path_for(id, ctx.output_dir);
    if (fs::exists(path)) cases.emplace_back(id, qc_result_from_json(read_file(path)));
  }
  const auto run = nlohmann::json::parse(read_file(run_json_path));
  for (const auto& c : run.at("cases")) {
    if (c.value("status", "") != "failed") continue;
    QcResult r;
    r.verdict = "fail";
    const auto& e = c.value("error", nlohmann::json::object());
    std::string message = e.value("message", "");
    std::replace(message.begin(), message.end(), '\n', ' ');
    r.reasons = {"run_failed: [" + e.value("node", "") + "] " + message};
    cases.emplace_back(c.at("id").get<std::string>(), r);
  }
  write_file_atomic((fs::path(ctx.output_dir) / options_.folder / "review.csv").string(),
                    review_csv(cases));
}

}  // namespace spineparse::plugins::metrics
