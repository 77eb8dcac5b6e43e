#include "report.hpp"

#include <cstdio>
#include <filesystem>

#include "metrics/measure.hpp"
#include "metrics/overlay.hpp"
#include "metrics/report_html.hpp"
#include "spineparse/files.hpp"

namespace spineparse::metrics {
namespace fs = std::filesystem;

StageDescription report_description() {
  StageDescription d;
  d.kind = "metrics.report";
  d.summary = "QC overlays (PNG) per case and a self-contained report.html for the run";
  d.params = {
      {"folder", ParamType::kString, ParamValue(std::string("qc")), false,
       "sub-folder of the output for the overlays"},
      {"max_size",
       ParamType::kInt,
       ParamValue(std::int64_t{320}),
       false,
       "pixels along the longer side of each sagittal panel",
       {},
       32.0,
       2048.0},
      {"embed_mb",
       ParamType::kFloat,
       ParamValue(8.0),
       false,
       "inline the overlays in report.html while they total at most this many MB; link them beyond",
       {},
       0.0,
       1024.0},
  };
  d.reads = {{"image", false, "", "float32", "D,H,W"}, {"labels", false, "", "uint8", "D,H,W"}};
  return d;
}

CasePtr Report::process(const CasePtr& in) {
  const std::string path =
      (fs::path(output_dir_) / params_.get_string("folder") / (in->id() + ".png")).string();
  write_overlay_png(path, *in->get("image"), *in->get("labels"), in->geometry(),
                    static_cast<int>(params_.get_int("max_size")));
  auto out = in->derive();
  out->set_attr("overlay", path);
  const std::string record = in->attr("measurements");
  if (!record.empty()) {  // metrics.measure ran before: its endplates and heights drawn
    const std::string mpath = (fs::path(output_dir_) / params_.get_string("folder") /
                               (in->id() + "_measures.png")).string();
    const std::string png = render_measurement_png(
        *in->get("image"), *in->get("labels"), in->geometry(),
        case_measurement_from_json(read_file(record)),
        static_cast<int>(params_.get_int("max_size")) * 3 / 2);
    write_file_atomic(mpath, png);
    out->set_attr("measure_overlay", mpath);
  }
  return out;
}

void Report::after_run(const std::string& run_json_path, const StageContext&) {
  const std::string p = write_report_html(
      run_json_path, static_cast<std::int64_t>(params_.get_float("embed_mb") * (1 << 20)));
  std::fprintf(stderr, "report: %s\n", p.c_str());
}

}  // namespace spineparse::metrics
