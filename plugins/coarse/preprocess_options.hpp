// coarse.preprocess: its options (kind, parameters, defaults): the contract tools include
// instead of the header that declares the stage class.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "spineparse/param_set.hpp"

namespace spineparse::plugins::coarse {

struct PreprocessOptions {
  static constexpr const char* kKind = "coarse.preprocess";
  std::int64_t height = 128, width = 256;
  std::int64_t min_slices = 18;
  static void declare(ParamSet<PreprocessOptions>& s);
};

inline void PreprocessOptions::declare(ParamSet<PreprocessOptions>& s) {
  using O = PreprocessOptions;
  s.add(&O::height, "height", "rows of the network input").min(16);
  s.add(&O::width, "width", "columns of the network input").min(16);
  s.add(&O::min_slices, "min_slices", "pad the slice axis to this many").min(1);
}

}  // namespace spineparse::plugins::coarse
