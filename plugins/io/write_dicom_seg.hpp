// io.write_dicom_seg — the label map of a case read from a DICOM series as a DICOM-SEG object
// beside the other outputs (cases read from NIfTI/NRRD/MetaImage pass untouched).
//
// Inputs:  labels uint8 [D,H,W] on the series' own grid (after io.restore_orientation).
// Outputs: OUTPUT/<name> with {id} replaced: one segment per structure found, frames per slice,
//          referencing the source images (io/dicom_seg.hpp). Concurrency: parallel.
//
//   {"id": "dicom_seg", "stage": "io.write_dicom_seg"}
#pragma once

#include "spineparse/case_file_stage.hpp"
#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::io {

struct WriteDicomSegOptions {
  static constexpr const char* kKind = "io.write_dicom_seg";
  std::string name = "seg_{id}.dcm";
  static void declare(ParamSet<WriteDicomSegOptions>& s);
};
StageDescription write_dicom_seg_description();
StageAttributes write_dicom_seg_attributes();

class WriteDicomSeg : public CaseFileStage<WriteDicomSegOptions> {
 public:
  using CaseFileStage::CaseFileStage;
  CasePtr process(const CasePtr& in) override;

 protected:
  std::string path_for(const std::string& id, const std::string& output_dir) const override;
  bool writes_file_for(const CaseSeed& seed) const override;
};

}  // namespace spineparse::plugins::io
