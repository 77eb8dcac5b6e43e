#include "write_dicom_sr.hpp"

#include <filesystem>
#include <stdexcept>

#include "io/case_attributes.hpp"
#include "io/dicom.hpp"
#include "metrics/case_attributes.hpp"
#include "metrics/measure.hpp"
#include "metrics/measure_sr.hpp"
#include "spineparse/files.hpp"

namespace spineparse::plugins::metrics {

using namespace spineparse::metrics;  // the library floor this group builds on
namespace fs = std::filesystem;

void WriteDicomSrOptions::declare(ParamSet<WriteDicomSrOptions>& s) {
  using O = WriteDicomSrOptions;
  s.add(&O::name, "name", "file name; {id} is the case id");
}

StageDescription write_dicom_sr_description() {
  StageDescription d = describe<WriteDicomSrOptions>(
      "Measurements of cases read from DICOM series as a DICOM SR (TID 1500) referencing the "
      "source series and the DICOM-SEG's segments");
  return d;
}

StageAttributes write_dicom_sr_attributes() {
  StageAttributes a;
  a.reads = {{io::kDicomFilesAttr, true, "the source series (cases read from NIfTI get no SR)"},
             {kMeasurementsAttr, false, "metrics.measure's record of the case"},
             {io::output_attr("dicom_seg"), false, "the DICOM-SEG the SR references"}};
  a.writes = {io::output_write("dicom_sr", "the SR written (cases read from DICOM only)")};
  return a;
}

std::string WriteDicomSr::path_for(const std::string& id, const std::string& output_dir) const {
  return (fs::path(output_dir) / with_case_id(options_.name, id)).string();
}

CasePtr WriteDicomSr::process(const CasePtr& in) {
  const std::string sources = in->attr(io::kDicomFilesAttr);
  if (sources.empty()) return in;  // not read from DICOM
  const std::string record = in->attr(kMeasurementsAttr),
                    seg = in->attr(io::output_attr("dicom_seg"));
  if (record.empty())
    throw std::runtime_error("metrics.write_dicom_sr needs a metrics.measure node before it");
  if (seg.empty())
    throw std::runtime_error("metrics.write_dicom_sr needs an io.write_dicom_seg node before it");
  const std::string path = file_of(in->id());
  write_measurement_sr(path, case_measurement_from_json(read_file(record)), seg,
                       io::file_list(sources));
  auto out = in->derive();
  out->set_attr(io::output_attr("dicom_sr"), path);
  return out;
}

bool WriteDicomSr::writes_file_for(const CaseSeed& seed) const {
  return seed.attrs.count("dicom_files") != 0;  // only cases read from DICOM
}

}  // namespace spineparse::plugins::metrics
