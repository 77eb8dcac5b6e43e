// io.read_dataset — the source of a graph: lists a dataset folder and reads each case's volumes.
//
// Inputs:  a folder, either in the original layout
//            DIR/original_mr/Case{i}.nii.gz   (+ optional DIR/mask/mask_case{i}.nii.gz)
//          (DIR may also be the original_mr folder itself), or a flat folder of volumes (.nii,
//          .nii.gz, .nrrd, .nhdr, .mha, .mhd) where "mask_<id>" files, or same-named files in a
//          mask/ or masks/ subfolder, are the masks.
// Outputs: image  float32 [D,H,W] (array axes H,W,D of the file, spec 1.1)
//          mask   uint8 [D,H,W], only for cases that have one
//          case attrs image_path, mask_path; the case geometry.
// Params:  dir (default: --input), layout (auto|original|flat), cases (restrict to ids),
//          read_mask, max_voxels, max_slices.
// Errors:  unreadable, truncated or corrupt files, not 3-D, image/mask size or geometry
//          mismatch, non-finite voxels, empty or constant volumes, volumes over the size limits:
//          each fails only its case, with the file named.
// Concurrency: parallel (ITK readers are independent).
//
//   {"id": "read", "stage": "io.read_dataset", "params": {"layout": "auto"}}
#pragma once

#include "read_dataset_options.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::io {

StageDescription read_dataset_description();
StageAttributes read_dataset_attributes();

class ReadDataset : public StageWith<ReadDatasetOptions> {
 public:
  using StageWith::StageWith;
  void open(const StageContext& ctx) override;
  std::vector<CaseSeed> enumerate(const StageContext& ctx) override;
  CasePtr process(const CasePtr& in) override;
};

}  // namespace spineparse::plugins::io
