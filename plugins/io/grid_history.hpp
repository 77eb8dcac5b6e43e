// io.reorient's record of how it moved a case off the input's grid, which io.restore_orientation
// reads to put every volume back: the case's typed value "io.grid" (a Payload). The one contract
// between the two stages; both declare it (grid_history_use) so that validation refuses a graph
// that restores without reorienting.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "io/orientation.hpp"
#include "io/slice_axis.hpp"
#include "spineparse/case.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::io {

inline constexpr const char* kGridHistoryValue = "io.grid";

struct GridHistory : Payload {
  using Grid = std::array<std::int64_t, 3>;  // D, H, W of the volumes' last three axes

  // Permuted and flipped to the model's orientation: the way back, the grid the volumes have
  // in the model's orientation, and the input's geometry.
  struct Reoriented {
    spineparse::io::Reorientation back;
    Grid grid{};
    Geometry as_stored;
  };
  // Then the slice axis resampled: the plan, the resampled grid, the geometry before, and the
  // input's own mask (the labels are put back on the input's slices, the mask is the input's).
  struct Resampled {
    spineparse::io::SlicePlan plan;
    Grid grid{};
    Geometry before;
    NdArrayPtr mask_before;
  };
  std::optional<Reoriented> reoriented;  // empty: in the model's orientation, or used as stored
  std::optional<Resampled> resampled;    // empty: the input's slices

  std::string describe() const override {
    return std::string("grid history: ") + (reoriented ? reoriented->back.describe() : "as stored") +
           (resampled ? ", slices resampled" : "");
  }
};

// The last three axes of a volume, to tell which fields lie on a grid.
inline GridHistory::Grid grid_of(const NdArray& a) {
  const std::size_t n = a.ndim();
  return {a.dim(n - 3), a.dim(n - 2), a.dim(n - 1)};
}

inline AttributeUse grid_history_use(const std::string& help) {
  return {kGridHistoryValue, false, help, "GridHistory, plugins/io/grid_history.hpp"};
}

}  // namespace spineparse::plugins::io
