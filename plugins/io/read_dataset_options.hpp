// io.read_dataset: its options (kind, parameters, defaults): the contract tools include
// instead of the header that declares the stage class.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "spineparse/param_set.hpp"

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

}  // namespace spineparse::plugins::io
