#include "write_dicom_seg.hpp"

#include <filesystem>

#include "io/case_attributes.hpp"
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
      "Labels of cases read from DICOM series as DICOM-SEG (one segment per structure)");
  d.reads = {{"labels", false, "on the series' grid", "uint8", "D,H,W"}};
  return d;
}

StageAttributes write_dicom_seg_attributes() {
  StageAttributes a;
  a.reads = {{kDicomFilesAttr, true, "the source series (cases read from NIfTI get no file)"}};
  a.writes = {output_write("dicom_seg", "the DICOM-SEG written (cases read from DICOM only)")};
  return a;
}

std::string WriteDicomSeg::path_for(const std::string& id, const std::string& output_dir) const {
  return (fs::path(output_dir) / with_case_id(options_.name, id)).string();
}

CasePtr WriteDicomSeg::process(const CasePtr& in) {
  const std::string list = in->attr(kDicomFilesAttr);
  if (list.empty()) return in;  // not read from DICOM
  const std::string path = file_of(in->id());
  write_dicom_seg(path, *in->get("labels"), in->geometry(), file_list(list));
  auto out = in->derive();
  out->set_attr(output_attr("dicom_seg"), path);
  return out;
}

bool WriteDicomSeg::writes_file_for(const CaseSeed& seed) const {
  return seed.attrs.count("dicom_files") != 0;  // only cases read from DICOM
}

}  // namespace spineparse::plugins::io
