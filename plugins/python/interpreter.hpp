// The one Python interpreter of a spineparse process, and what crosses between it and a case.
//
// start_interpreter() starts it once (later calls return at once) and never finalizes it: libpython
// is made global first, so that extension modules (numpy, scipy, torch) resolve its symbols from
// inside a plugin loaded RTLD_LOCAL; Python installs no signal handlers (Ctrl-C stays spineparse's);
// the GIL is released at the end, so every caller takes it (pybind11::gil_scoped_acquire) only while
// it runs Python. The embedded module `spineparse` (Case, Geometry) is importable from then on.
// Everything below except start_interpreter() needs the GIL.
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "spineparse/case.hpp"

namespace spineparse::plugins::python {

void start_interpreter();

// A case as the Python side sees it (spineparse.Case): `reads` as read-only numpy arrays sharing
// the fields' memory (a field absent from the case is left out), its geometry, attributes and
// metrics as copies.
pybind11::object case_view(const Case& c, const std::vector<std::string>& reads);

// The pending Python exception as "Type: message" followed by the user's last frames
// ("  at FILE:LINE in FUNCTION"), at most `frames` of them; for a SyntaxError, its file and line.
std::string describe_exception(pybind11::error_already_set& e, int frames = 3);

// The dtype name numpy gives an array ("uint8", "float32", ...).
std::string numpy_dtype(const pybind11::handle& array);

// A copy of a numpy array (any strides) as an NdArray of the same dtype and shape; throws
// std::invalid_argument for a dtype spineparse has no type for.
NdArrayPtr to_ndarray(const pybind11::handle& array);

}  // namespace spineparse::plugins::python
