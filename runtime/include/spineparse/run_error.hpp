// RunError: a run that cannot start or go on as a whole (its output folder in use or unwritable,
// a stage that cannot open, a source that cannot list its cases), as opposed to a failed case.
#pragma once

#include <stdexcept>

namespace spineparse {

class RunError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace spineparse
