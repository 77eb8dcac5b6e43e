#include "write_dicom_seg.hpp"

#include <filesystem>
#include <sstream>

#include "io/dicom_seg.hpp"

namespace spineparse::io {
namespace fs = std::filesystem;

StageDescription write_dicom_seg_description() {
  StageDescription d;
  d.kind = "io.write_dicom_seg";
  d.summary = "Labels of cases read from DICOM series as DICOM-SEG (one segment per structure)";
  d.params = {{"name", ParamType::kString, ParamValue(std::string("seg_{id}.dcm")), false,
               "file name; {id} is the case id"}};
  d.reads = {{"labels", false, "on the series' grid", "uint8", "D,H,W"}};
  return d;
}

std::string WriteDicomSeg::path_for(const std::string& id, const std::string& output_dir) const {
  std::string name = params_.get_string("name");
  for (std::size_t p = 0; (p = name.find("{id}", p)) != std::string::npos; p += id.size())
    name.replace(p, 4, id);
  return (fs::path(output_dir) / name).string();
}

CasePtr WriteDicomSeg::process(const CasePtr& in) {
  const std::string list = in->attr("dicom_files");
  if (list.empty()) return in;  // not read from DICOM
  std::vector<std::string> files;
  std::istringstream lines(list);
  for (std::string f; std::getline(lines, f);) files.push_back(f);
  const std::string path = path_for(in->id(), output_dir_);
  write_dicom_seg(path, *in->get("labels"), in->geometry(), files);
  auto out = in->derive();
  out->set_attr("output:dicom_seg", path);
  return out;
}

std::vector<std::string> WriteDicomSeg::outputs_for(const CaseSeed& seed,
                                                    const StageContext& ctx) const {
  if (!seed.attrs.count("dicom_files")) return {};
  return {path_for(seed.id, ctx.output_dir)};
}

}  // namespace spineparse::io
