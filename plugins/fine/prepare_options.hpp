// fine.prepare: its options (kind, parameters, defaults): the contract tools include
// instead of the header that declares the stage class.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "spineparse/param_set.hpp"

namespace spineparse::plugins::fine {

struct PrepareOptions {
  static constexpr const char* kKind = "fine.prepare";
  std::int64_t height = 256, width = 512;
  static void declare(ParamSet<PrepareOptions>& s);
};

inline void PrepareOptions::declare(ParamSet<PrepareOptions>& s) {
  s.add(&PrepareOptions::height, "height", "rows of the fine grid").min(16);
  s.add(&PrepareOptions::width, "width", "columns of the fine grid").min(16);
}

}  // namespace spineparse::plugins::fine
