#include "report.hpp"

#include <tbb/parallel_invoke.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "confidence_field.hpp"
#include "io/volume_io.hpp"
#include "metrics/case_attributes.hpp"
#include "metrics/measure.hpp"
#include "metrics/overlay.hpp"
#include "metrics/report_html.hpp"
#include "metrics/viewer_page.hpp"
#include "spineparse/files.hpp"

namespace spineparse::plugins::metrics {

using namespace spineparse::metrics;  // the library floor this group builds on
namespace fs = std::filesystem;

void ReportOptions::declare(ParamSet<ReportOptions>& s) {
  using O = ReportOptions;
  s.add(&O::folder, "folder", "sub-folder of the output for the overlays");
  s.add(&O::max_size, "max_size", "pixels along the longer side of each sagittal panel")
      .range(32, 2048);
  s.add(&O::embed_mb, "embed_mb",
        "inline the overlays in report.html while they total at most this many MB; link them "
        "beyond")
      .range(0, 1024);
  s.add(&O::viewer, "viewer",
        "an interactive viewer page per case (<folder>/<case>.html; needs viewer/ from "
        "scripts/setup)");
  s.add(&O::viewer_max_side, "viewer_max_side",
        "voxels along each axis of the volumes a viewer page embeds (longer axes are reduced)")
      .range(16, 1024);
}

StageDescription report_description() {
  StageDescription d = describe<ReportOptions>(
      "QC overlays (PNG) per case and a self-contained report.html for the run");
  d.reads = {{"image", false, "", "float32", "D,H,W"},
             {"labels", false, "", "uint8", "D,H,W"},
             {"mask", true, "the viewer's difference view", "uint8", "D,H,W"},
             confidence_read("each structure's confidence in the viewer")};
  return d;
}

namespace {

// The viewer's one-file build: SPINEPARSE_VIEWER_JS, else the build tree's copy, else the
// installed one; empty when none exists.
std::string viewer_script() {
  for (const char* p : {static_cast<const char*>(std::getenv("SPINEPARSE_VIEWER_JS")),
                        SPINEPARSE_VIEWER_BUILD, SPINEPARSE_VIEWER_INSTALLED})
    if (p && *p && fs::exists(p)) return p;
  return "";
}

}  // namespace

void Report::open(const StageContext& ctx) {
  output_dir_ = ctx.output_dir;
  viewer_ = false;
  if (!options_.viewer) return;
  const std::string js = viewer_script();
  if (js.empty()) {
    std::fprintf(stderr,
                 "report: the viewer (niivue.umd.js) is not installed (scripts/setup installs it "
                 "into viewer/); the report shows static pictures only\n");
    return;
  }
  const fs::path copy = fs::path(output_dir_) / options_.folder / "niivue.umd.js";
  try {
    std::error_code ec;
    if (fs::file_size(copy, ec) != fs::file_size(js)) {
      fs::create_directories(copy.parent_path());
      write_file_atomic(copy.string(), read_file(js));
    }
    viewer_ = true;
  } catch (const std::exception& e) {  // the pictures and the report can still be written
    std::fprintf(stderr, "report: no viewer pages: %s\n", e.what());
  }
}

// qc/<case>.html: the case's volumes reduced to viewer_max_side, each written as gzip NIfTI to a
// temporary file (ITK writes the geometry), read back and embedded in the page.
void Report::write_viewer_page(const CasePtr& in, const std::string& png,
                               const CaseMeasurement* measured) {
  const fs::path dir = fs::path(output_dir_) / options_.folder;
  const ViewerVolumes v = viewer_volumes(
      *in->get("image"), *in->get("labels"), in->has("mask") ? in->get("mask").get() : nullptr,
      in->geometry(), static_cast<int>(options_.viewer_max_side), measured);
  auto nifti = [&](const NdArrayPtr& a, const std::string& what) -> std::string {
    if (!a) return "";
    const std::string tmp = temp_path_for((dir / (in->id() + "." + what + ".nii.gz")).string());
    struct Remove {  // also when writing or reading fails
      std::string path;
      ~Remove() {
        std::error_code ec;
        fs::remove(path, ec);
      }
    } remove{tmp};
    io::write_volume(tmp, *a, v.geometry);
    return read_file(tmp);
  };
  ViewerPage page;
  page.id = in->id();
  if (const auto conf = confidence_of(*in))
    page.confidence = conf->value, page.reliable = conf->is_reliable;
  page.mr_nii_gz = nifti(v.image, "mr");
  page.labels_nii_gz = nifti(v.labels, "labels");
  page.diff_nii_gz = nifti(v.diff, "difference");
  page.lines_nii_gz = nifti(v.lines, "measurements");
  page.fallback_png = fs::path(png).filename().string();
  const auto& f = v.factor;
  if (f[0] * f[1] * f[2] > 1)
    page.note = "reduced " + std::to_string(f[1]) + "x" + std::to_string(f[2]) + "x" +
                std::to_string(f[0]) + " for viewing";
  write_file_atomic((dir / (in->id() + ".html")).string(), viewer_page_html(page));
}

StageAttributes report_attributes() {
  StageAttributes a;
  a.reads = {
      {kMeasurementsAttr, true, "metrics.measure's record: drawn as the measurement picture"}};
  a.writes = {{kOverlayAttr, false, "the labels drawn over the image (PNG)"},
              {kMeasureOverlayAttr, true, "the measured endplates and heights (PNG)"},
              {kViewerAttr, true, "the case's viewer page (viewer=true)"}};
  return a;
}

CasePtr Report::process(const CasePtr& in) {
  const fs::path dir = fs::path(output_dir_) / options_.folder;
  const std::string path = (dir / (in->id() + ".png")).string();
  const std::string mpath = (dir / (in->id() + "_measures.png")).string();
  std::optional<CaseMeasurement> measured;  // metrics.measure ran before: its record
  if (!in->attr(kMeasurementsAttr).empty())
    measured = case_measurement_from_json(read_file(in->attr(kMeasurementsAttr)));
  // The three outputs are independent: drawn in parallel where a core is free.
  tbb::parallel_invoke(
      [&] {
        write_overlay_png(path, *in->get("image"), *in->get("labels"), in->geometry(),
                          static_cast<int>(options_.max_size));
      },
      [&] {
        if (measured)
          write_file_atomic(mpath, render_measurement_png(
                                       *in->get("image"), *in->get("labels"), in->geometry(),
                                       *measured, static_cast<int>(options_.max_size) * 3 / 2));
      },
      [&] {
        if (viewer_) write_viewer_page(in, path, measured ? &*measured : nullptr);
      });
  auto out = in->derive();
  out->set_attr(kOverlayAttr, path);
  if (measured) out->set_attr(kMeasureOverlayAttr, mpath);
  if (viewer_) out->set_attr(kViewerAttr, (dir / (in->id() + ".html")).string());
  return out;
}

void Report::after_run(const std::string& run_json_path, const StageContext&) {
  const std::string p =
      write_report_html(run_json_path, static_cast<std::int64_t>(options_.embed_mb * (1 << 20)));
  std::fprintf(stderr, "report: %s\n", p.c_str());
}

}  // namespace spineparse::plugins::metrics
