// io.write_nifti — writes one case field as a volume with the case's geometry.
//
// Inputs:  the field named by `field` ([D,H,W], uint8, int16 or float32).
// Outputs: OUTPUT/<folder>/<name> where name's "{id}" is the case id; by default
//          seg_Case{i}.nii.gz, the original's file name, uint8 labels that overlay the input.
//          Writes are atomic (temporary file, then rename), so --resume trusts any file present.
// Params:  field, name, folder, dtype (auto keeps the field's type).
// Errors:  a missing field or unwritable folder fails the case. Concurrency: parallel.
//
//   {"id": "write", "stage": "io.write_nifti", "params": {"field": "labels"}}
#pragma once

#include "spineparse/case_file_stage.hpp"
#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::io {

struct WriteNiftiOptions {
  static constexpr const char* kKind = "io.write_nifti";
  std::string field = "labels";
  std::string name = "seg_{id}.nii.gz";
  std::string folder;
  std::string dtype = "auto";
  static void declare(ParamSet<WriteNiftiOptions>& s);
};
StageDescription write_nifti_description();
StageAttributes write_nifti_attributes();

class WriteNifti : public CaseFileStage<WriteNiftiOptions> {
 public:
  using CaseFileStage::CaseFileStage;
  CasePtr process(const CasePtr& in) override;

 protected:
  std::string path_for(const std::string& id, const std::string& output_dir) const override;
};

}  // namespace spineparse::plugins::io
