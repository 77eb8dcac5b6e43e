#include "interpreter.hpp"

#include <dlfcn.h>
#include <pybind11/embed.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace py = pybind11;

namespace spineparse::plugins::python {
namespace {

// spineparse.Geometry: the case's grid in LPS millimetres. spacing and origin follow the file's
// axes (i, j, k), which are the arrays' H, W and D; spacing_dhw is spacing in the arrays' order.
struct PyGeometry {
  Geometry g;
  py::tuple spacing() const { return py::make_tuple(g.spacing[0], g.spacing[1], g.spacing[2]); }
  py::tuple spacing_dhw() const {
    return py::make_tuple(g.spacing[2], g.spacing[0], g.spacing[1]);
  }
  py::tuple origin() const { return py::make_tuple(g.origin[0], g.origin[1], g.origin[2]); }
  py::tuple direction() const {
    const auto& d = g.direction;
    return py::make_tuple(py::make_tuple(d[0], d[1], d[2]), py::make_tuple(d[3], d[4], d[5]),
                          py::make_tuple(d[6], d[7], d[8]));
  }
};

// spineparse.Case: what a stage's Python code gets for one case.
struct PyCase {
  std::string id;
  py::dict fields, attrs, metrics;
  PyGeometry geometry;
};

}  // namespace
}  // namespace spineparse::plugins::python

PYBIND11_EMBEDDED_MODULE(spineparse, m) {
  using spineparse::plugins::python::PyCase;
  using spineparse::plugins::python::PyGeometry;
  m.doc() = "What spineparse hands a python.stage: Case (id, fields, geometry, attrs, metrics)";
  py::class_<PyGeometry>(m, "Geometry")
      .def_property_readonly("spacing", &PyGeometry::spacing, "mm along the file's axes i, j, k")
      .def_property_readonly("spacing_dhw", &PyGeometry::spacing_dhw,
                             "mm along the arrays' axes D, H, W")
      .def_property_readonly("origin", &PyGeometry::origin, "LPS mm of voxel (0, 0, 0)")
      .def_property_readonly("direction", &PyGeometry::direction,
                             "3x3, row r = LPS axis r, column c = file axis c")
      .def("__repr__", [](const PyGeometry& g) { return "Geometry(" + g.g.describe() + ")"; });
  py::class_<PyCase>(m, "Case")
      .def_readonly("id", &PyCase::id)
      .def_readonly("fields", &PyCase::fields, "read-only numpy arrays sharing the case's memory")
      .def_readonly("attrs", &PyCase::attrs)
      .def_readonly("metrics", &PyCase::metrics)
      .def_readonly("geometry", &PyCase::geometry)
      .def("__repr__", [](const PyCase& c) { return "Case('" + c.id + "')"; });
}

namespace spineparse::plugins::python {
namespace {

py::dtype numpy_dtype_of(DType t) {
  switch (t) {
    case DType::kUInt8:
      return py::dtype::of<std::uint8_t>();
    case DType::kInt16:
      return py::dtype::of<std::int16_t>();
    case DType::kInt32:
      return py::dtype::of<std::int32_t>();
    case DType::kInt64:
      return py::dtype::of<std::int64_t>();
    case DType::kFloat32:
      return py::dtype::of<float>();
    case DType::kFloat64:
      return py::dtype::of<double>();
  }
  throw std::logic_error("unknown DType");
}

// A read-only array over the field's memory; the capsule keeps the field alive for as long as
// Python holds the array (also after the call).
py::array shared_array(const NdArrayPtr& a) {
  auto* keep = new NdArrayPtr(a);
  py::capsule owner(keep, [](void* p) { delete static_cast<NdArrayPtr*>(p); });
  std::vector<py::ssize_t> shape(a->shape().begin(), a->shape().end());
  py::array arr(numpy_dtype_of(a->dtype()), shape, a->raw(), owner);
  arr.attr("setflags")(py::arg("write") = false);
  return arr;
}

// libpython as the plugin loaded it, made global (RTLD_NOLOAD: the same library, no second copy).
void make_libpython_global() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&Py_IsInitialized), &info) == 0 || !info.dli_fname)
    throw std::runtime_error("cannot find the loaded libpython (dladdr)");
  if (!::dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD))
    throw std::runtime_error(std::string("cannot make ") + info.dli_fname +
                             " global: " + ::dlerror());
}

// A virtual environment named by VIRTUAL_ENV (activated in the shell): its site-packages join
// sys.path as `python` would add them (made with --system-site-packages, Debian's stay visible).
void add_virtual_env() {
  const char* venv = std::getenv("VIRTUAL_ENV");
  if (!venv || !*venv) return;
  py::module_ sys = py::module_::import("sys");
  const auto v = sys.attr("version_info");
  const std::string site = std::string(venv) + "/lib/python" + py::str(v.attr("major")).cast<std::string>() +
                           "." + py::str(v.attr("minor")).cast<std::string>() + "/site-packages";
  py::module_::import("site").attr("addsitedir")(site);
}

}  // namespace

void start_interpreter() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (Py_IsInitialized()) return;  // a host that embeds Python already
    make_libpython_global();
    py::initialize_interpreter(/*init_signal_handlers=*/false, 0, nullptr,
                               /*add_program_dir_to_path=*/false);
    add_virtual_env();
    py::module_::import("numpy");  // here, once, not inside the first case's call
    py::module_::import("spineparse");  // registers Case and Geometry
    PyEval_SaveThread();           // the GIL is taken per call from now on
  });
}

py::object case_view(const Case& c, const std::vector<std::string>& reads) {
  auto view = std::make_unique<PyCase>();
  view->id = c.id();
  for (const auto& name : reads)
    if (c.has(name)) view->fields[py::str(name)] = shared_array(c.get(name));
  for (const auto& [k, v] : c.attrs()) view->attrs[py::str(k)] = py::str(v);
  for (const auto& [k, v] : c.metrics()) view->metrics[py::str(k)] = py::float_(v);
  view->geometry.g = c.geometry();
  return py::cast(std::move(view));
}

std::string describe_exception(py::error_already_set& e, int frames) {
  std::string out;
  try {
    py::module_ tb = py::module_::import("traceback");
    py::list only = tb.attr("format_exception_only")(e.type(), e.value());
    for (const auto& line : only) out += line.cast<std::string>();
    while (!out.empty() && out.back() == '\n') out.pop_back();
    if (e.trace()) {
      py::list stack = tb.attr("extract_tb")(e.trace());
      const auto n = static_cast<py::ssize_t>(py::len(stack));
      for (py::ssize_t i = std::max<py::ssize_t>(0, n - frames); i < n; ++i) {
        py::object f = stack[static_cast<std::size_t>(i)];
        out += "\n  at " + f.attr("filename").cast<std::string>() + ":" +
               py::str(f.attr("lineno")).cast<std::string>() + " in " +
               f.attr("name").cast<std::string>();
      }
    }
  } catch (const std::exception&) {
    out = e.what();
  }
  return out;
}

std::string numpy_dtype(const py::handle& array) {
  return py::str(array.attr("dtype").attr("name")).cast<std::string>();
}

NdArrayPtr to_ndarray(const py::handle& obj) {
  const std::string name = numpy_dtype(obj);
  static const std::array<std::pair<const char*, DType>, 6> kTypes{{{"uint8", DType::kUInt8},
                                                                    {"int16", DType::kInt16},
                                                                    {"int32", DType::kInt32},
                                                                    {"int64", DType::kInt64},
                                                                    {"float32", DType::kFloat32},
                                                                    {"float64", DType::kFloat64}}};
  const auto* t = std::find_if(kTypes.begin(), kTypes.end(),
                               [&](const auto& k) { return name == k.first; });
  if (t == kTypes.end()) throw std::invalid_argument("numpy dtype " + name + " has no spineparse type");
  py::array c = py::array::ensure(obj, py::array::c_style);  // a copy only when not C-ordered
  std::vector<std::int64_t> shape(c.shape(), c.shape() + c.ndim());
  auto out = std::make_shared<NdArray>(t->second, shape);
  const void* src = c.data();
  const std::size_t n = out->nbytes();
  {
    py::gil_scoped_release free;  // other Python calls run while this copies
    std::memcpy(out->raw(), src, n);
  }
  return out;
}

}  // namespace spineparse::plugins::python
