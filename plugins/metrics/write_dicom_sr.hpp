// metrics.write_dicom_sr — the measurements of a case read from a DICOM series as a DICOM
// Structured Report (TID 1500 measurement report) beside its DICOM-SEG, so a PACS viewer shows
// the numbers (cases read from NIfTI/NRRD/MetaImage pass untouched).
//
// Inputs:  the case's measurement record (attr "measurements", from metrics.measure), its DICOM-SEG
//          (attr "output:dicom_seg", from io.write_dicom_seg) and its source images (attr
//          "dicom_files"); a DICOM case missing either of the first two fails, naming the stage
//          it needs.
// Outputs: OUTPUT/<name> with {id} replaced: one volumetric ROI group per structure, referencing
//          the SEG's segment and the source series, and an alignment group
//          (metrics/measure_sr.hpp).
// Params:  name. Concurrency: parallel.
//
//   {"id": "dicom_sr", "stage": "metrics.write_dicom_sr"}
#pragma once

#include "spineparse/case_file_stage.hpp"
#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::metrics {

struct WriteDicomSrOptions {
  static constexpr const char* kKind = "metrics.write_dicom_sr";
  std::string name = "sr_{id}.dcm";
  static void declare(ParamSet<WriteDicomSrOptions>& s);
};
StageDescription write_dicom_sr_description();
StageAttributes write_dicom_sr_attributes();

class WriteDicomSr : public CaseFileStage<WriteDicomSrOptions> {
 public:
  using CaseFileStage::CaseFileStage;
  CasePtr process(const CasePtr& in) override;

 protected:
  std::string path_for(const std::string& id, const std::string& output_dir) const override;
  bool writes_file_for(const CaseSeed& seed) const override;
};

}  // namespace spineparse::plugins::metrics
