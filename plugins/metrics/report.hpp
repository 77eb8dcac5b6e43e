// metrics.report — QC pictures per case and one self-contained report.html for the run.
//
// Inputs:  image float32 [D,H,W], labels uint8 [D,H,W].
// Outputs: OUTPUT/<folder>/<case>.png per case (overlay.hpp) and, when metrics.measure ran before
//          (attr "measurements"), OUTPUT/<folder>/<case>_measures.png with its endplates and
//          heights drawn (1.5 x max_size); after the run OUTPUT/report.html:
//          cohort summary (per-structure Dice mean +- std as a table and a chart, from
//          metrics/summary.json when the graph evaluates), one row per case (Dice, failure and
//          its reason, seconds per stage, overlay thumbnail, measurements on demand: picture,
//          per-level table, outliers), the graph and plugin versions. It
//          opens offline: data and script are inline, and so are the pictures while they total
//          at most embed_mb; a larger cohort's page links them (<folder>/<case>.png beside it),
//          so that neither the page nor the memory to build it grows with the cohort.
//          With the viewer installed (viewer/, scripts/setup) each case also gets
//          OUTPUT/<folder>/<case>.html, its interactive viewer (metrics/viewer_page.hpp), with the
//          viewer's script copied once into the folder; report.html opens it in the case's row.
// Params:  folder, max_size (pixels per panel side), embed_mb, viewer, viewer_max_side.
//          Concurrency: parallel.
//
//   {"id": "report", "stage": "metrics.report"}
#pragma once

#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::metrics {
struct CaseMeasurement;
}

namespace spineparse::plugins::metrics {

struct ReportOptions {
  static constexpr const char* kKind = "metrics.report";
  std::string folder = "qc";
  std::int64_t max_size = 320;
  double embed_mb = 8.0;
  bool viewer = true;
  std::int64_t viewer_max_side = 256;
  static void declare(ParamSet<ReportOptions>& s);
};
StageDescription report_description();
StageAttributes report_attributes();

class Report : public StageWith<ReportOptions> {
 public:
  using StageWith::StageWith;
  void open(const StageContext& ctx) override;
  CasePtr process(const CasePtr& in) override;
  void after_run(const std::string& run_json_path, const StageContext& ctx) override;

 private:
  void write_viewer_page(const CasePtr& in, const std::string& png,
                         const spineparse::metrics::CaseMeasurement* measured);
  std::string output_dir_;
  bool viewer_ = false;  // niivue.umd.js copied into the folder: pages per case
};

}  // namespace spineparse::plugins::metrics
