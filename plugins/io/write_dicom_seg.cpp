#include "write_dicom_seg.hpp"

#include <filesystem>

#include "io/dicom.hpp"
#include "io/dicom_seg.hpp"
#include "spineparse/files.hpp"

namespace spineparse::plugins::io {

using namespace spineparse::io;  // the library floor this group builds on
namespace fs = std::filesystem;

void WriteDicomSegOptions::declare(ParamSet<WriteDicomSegOptions>& s) {
  using O = WriteDicomSegOptions;
  s.add(&O::name, "name", "file name; {id} is the case id");
}

StageDescription write_dicom_seg_description() {
  StageDescription d = describe<WriteDicomSegOptions>(
      "io.write_dicom_seg",
      "Labels of cases read from DICOM series as DICOM-SEG (one segment per structure)");
  d.reads = {{"labels", false, "on the series' grid", "uint8", "D,H,W"}};
  return d;
}

std::string WriteDicomSeg::path_for(const std::string& id, const std::string& output_dir) const {
  return (fs::path(output_dir) / with_case_id(options_.name, id)).string();
}

CasePtr WriteDicomSeg::process(const CasePtr& in) {
  const std::string list = in->attr("dicom_files");
  if (list.empty()) return in;  // not read from DICOM
  const std::string path = path_for(in->id(), output_dir_);
  write_dicom_seg(path, *in->get("labels"), in->geometry(), file_list(list));
  auto out = in->derive();
  out->set_attr("output:dicom_seg", path);
  return out;
}

std::vector<std::string> WriteDicomSeg::outputs_for(const CaseSeed& seed,
                                                    const StageContext& ctx) const {
  if (!seed.attrs.count("dicom_files")) return {};
  return {path_for(seed.id, ctx.output_dir)};
}

}  // namespace spineparse::plugins::io
