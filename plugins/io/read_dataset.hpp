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

#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::io {

struct ReadDatasetOptions {
  static constexpr const char* kKind = "io.read_dataset";
  std::string dir;
  std::string layout = "auto";
  std::vector<std::string> cases;
  bool read_mask = true;
  std::string series;
  std::int64_t max_voxels = std::int64_t{64} * 1024 * 1024;
  std::int64_t max_slices = 256;
  static void declare(ParamSet<ReadDatasetOptions>& s);
};

inline void ReadDatasetOptions::declare(ParamSet<ReadDatasetOptions>& s) {
  using O = ReadDatasetOptions;
  s.add(&O::dir, "dir", "dataset folder; empty: the run's --input").path();
  s.add(&O::layout, "layout",
        "original: DIR/original_mr + DIR/mask; flat: volumes in DIR; auto: detect")
      .one_of({"auto", "original", "flat"});
  s.add(&O::cases, "cases", "only these case ids (e.g. [\"Case3\", \"Case7\"]); empty: all");
  s.add(&O::read_mask, "read_mask", "read masks when present");
  s.add(&O::series, "series",
        "DICOM: only series whose SeriesDescription matches this regular expression (case "
        "insensitive, e.g. \"sag.*t2\"); the others are listed as skipped");
  s.add(&O::max_voxels, "max_voxels", "refuse volumes with more voxels").min(1);
  s.add(&O::max_slices, "max_slices",
        "refuse volumes with more slices (along the file axis of largest spacing)")
      .min(1);
}

StageDescription read_dataset_description();

class ReadDataset : public Stage {
 public:
  explicit ReadDataset(const Params& p);
  void open(const StageContext& ctx) override;
  std::vector<CaseSeed> enumerate(const StageContext& ctx) override;
  CasePtr process(const CasePtr& in) override;

 private:
  ReadDatasetOptions options_;
};

}  // namespace spineparse::plugins::io
