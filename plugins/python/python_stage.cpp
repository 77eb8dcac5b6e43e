#include "python_stage.hpp"

#include <pybind11/embed.h>
#include <pybind11/numpy.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "interpreter.hpp"

namespace py = pybind11;
using nlohmann::json;

namespace spineparse::plugins::python {

void PythonOptions::declare(ParamSet<PythonOptions>& s) {
  using O = PythonOptions;
  s.add(&O::callable, "callable",
        "module:function (run(case, options) -> dict) or module:Class (Class(options), then "
        "process(case) -> dict per case and an optional close())")
      .required();
  s.add(&O::path, "path", "folders put first on sys.path (relative to the graph's folder)").path();
  s.add(&O::reads, "reads", "case fields the code reads, as read-only numpy arrays");
  s.add(&O::writes, "writes",
        "fields the code returns: a list of {\"name\", \"dtype\", \"axes\"} (axes e.g. \"D,H,W\", "
        "checked against the case's grid; \"optional\": true when it may be left out)")
      .json();
  s.add(&O::options, "options", "a JSON object handed to the code as a dict").json();
  s.add(&O::concurrency, "concurrency",
        "cases inside the code at once (the GIL still serialises "
        "Python; code that releases it, numpy or torch, overlaps)")
      .min(1);
  s.add(&O::timeout_s, "timeout_s", "a call running longer fails its case (0: no limit)").min(0);
}

std::vector<FieldUse> declared_writes(const std::string& writes_json) {
  static const std::set<std::string> kDtypes{"uint8", "int16",   "int32",
                                             "int64", "float32", "float64"};
  static const std::set<std::string> kKeys{"name", "dtype", "axes", "optional", "help"};
  const json w = json::parse(writes_json, nullptr, false);
  if (!w.is_array()) throw std::invalid_argument("parameter 'writes' must be a list of objects");
  std::vector<FieldUse> out;
  for (std::size_t i = 0; i < w.size(); ++i) {
    const json& e = w[i];
    const std::string at = "writes[" + std::to_string(i) + "]";
    if (!e.is_object() || !e.contains("name") || !e["name"].is_string() ||
        e["name"].get<std::string>().empty())
      throw std::invalid_argument(at + " needs a \"name\"");
    for (const auto& [k, v] : e.items())
      if (!kKeys.count(k)) throw std::invalid_argument(at + " has an unknown key \"" + k + "\"");
    FieldUse f;
    f.name = e["name"];
    f.dtype = e.value("dtype", "");
    if (!kDtypes.count(f.dtype))
      throw std::invalid_argument(at + " (" + f.name +
                                  ") needs a \"dtype\": uint8, int16, int32, "
                                  "int64, float32 or float64");
    f.axes = e.value("axes", "");
    f.optional = e.value("optional", false);
    f.help = e.value("help", "written by Python code");
    out.push_back(f);
  }
  return out;
}

StageDescription python_description() {
  StageDescription d = describe<PythonOptions>(
      "A Python function or class run on each case (numpy arrays, no copy in)");
  d.fields_for = [](const Params& p) {
    const auto o = params_of<PythonOptions>().decode(p);
    const auto colon = o.callable.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == o.callable.size())
      throw std::invalid_argument("parameter 'callable' is '" + o.callable +
                                  "'; write module:function or module:Class");
    if (!json::parse(o.options, nullptr, false).is_object())
      throw std::invalid_argument("parameter 'options' must be a JSON object");
    std::vector<FieldUse> reads;
    for (const auto& r : o.reads) reads.push_back({r, false, "read by Python code"});
    return std::make_pair(reads, declared_writes(o.writes));
  };
  return d;
}

// The Python side of one node, and a watchdog that raises TimeoutError in calls past timeout_s.
struct PythonStage::Impl {
  py::object function, instance, options;
  struct Call {
    unsigned long thread = 0;
    std::chrono::steady_clock::time_point deadline;
    bool fired = false;
  };
  std::mutex m;
  std::condition_variable wake;
  std::map<int, Call> calls;
  int next_call = 0;
  bool stopping = false;
  std::thread watchdog;

  void watch() {
    std::unique_lock<std::mutex> lock(m);
    while (!stopping) {
      wake.wait_for(lock, std::chrono::milliseconds(50));
      const auto now = std::chrono::steady_clock::now();
      for (auto& [id, c] : calls) {
        if (c.fired || now < c.deadline) continue;
        c.fired = true;
        const unsigned long thread = c.thread;
        lock.unlock();
        {
          py::gil_scoped_acquire gil;
          // Still running: its caller unregisters under the GIL.
          std::lock_guard<std::mutex> again(m);
          if (calls.count(id)) PyThreadState_SetAsyncExc(thread, PyExc_TimeoutError);
        }
        lock.lock();
        break;  // the map may have changed
      }
    }
  }
  int enter(double timeout_s) {  // with the GIL
    std::lock_guard<std::mutex> lock(m);
    const auto limit = std::chrono::duration<double>(timeout_s > 0 ? timeout_s : 1e9);
    calls[next_call] = {PyThread_get_thread_ident(),
                        std::chrono::steady_clock::now() +
                            std::chrono::duration_cast<std::chrono::steady_clock::duration>(limit)};
    return next_call++;
  }
  bool leave(int id) {  // with the GIL; true when the watchdog fired on this call
    std::lock_guard<std::mutex> lock(m);
    const Call c = calls.at(id);
    calls.erase(id);
    if (c.fired) PyThreadState_SetAsyncExc(c.thread, nullptr);  // none left pending
    return c.fired;
  }
  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(m);
      stopping = true;
    }
    wake.notify_all();
    if (watchdog.joinable()) watchdog.join();
    if (function || instance || options) {
      py::gil_scoped_acquire gil;
      function = py::object();
      instance = py::object();
      options = py::object();
    }
  }
};

PythonStage::PythonStage(const Params& p)
    : StageWith(p), impl_(std::make_unique<Impl>()), writes_(declared_writes(options_.writes)) {}

PythonStage::~PythonStage() = default;

namespace {
// `callable`'s module imported and its attribute found, or an error naming what failed.
py::object load_callable(const std::string& callable, const std::vector<std::string>& path) {
  py::list sys_path = py::module_::import("sys").attr("path");
  for (auto it = path.rbegin(); it != path.rend(); ++it)
    if (!sys_path.contains(*it)) sys_path.insert(0, *it);
  const auto colon = callable.find(':');
  py::object target = py::module_::import(callable.substr(0, colon).c_str());
  std::stringstream names(callable.substr(colon + 1));
  for (std::string name; std::getline(names, name, '.');) {
    if (!py::hasattr(target, name.c_str())) {
      const std::string file = py::hasattr(target, "__file__")
                                   ? py::str(target.attr("__file__")).cast<std::string>()
                                   : "";
      throw std::invalid_argument("'" + callable.substr(0, colon) + "'" +
                                  (file.empty() ? "" : " (" + file + ")") + " has no '" + name +
                                  "'");
    }
    target = target.attr(name.c_str());
  }
  return target;
}
}  // namespace

void PythonStage::open(const StageContext& ctx) {
  node_ = ctx.node_id;
  std::string error;
  try {
    start_interpreter();
  } catch (const std::exception& e) {
    throw std::runtime_error("node '" + node_ + "': cannot start Python: " + e.what());
  }
  {
    py::gil_scoped_acquire gil;
    try {
      py::object target = load_callable(options_.callable, options_.path);
      impl_->options = py::module_::import("json").attr("loads")(options_.options);
      if (py::isinstance<py::type>(target)) {
        impl_->instance = target(impl_->options);
        if (!py::hasattr(impl_->instance, "process"))
          error = options_.callable + " has no method process(self, case)";
      } else if (PyCallable_Check(target.ptr())) {
        impl_->function = target;
      } else {
        error = options_.callable + " is not a function or a class";
      }
    } catch (py::error_already_set& e) {
      error = describe_exception(e, 5);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  if (!error.empty())
    throw std::runtime_error("node '" + node_ + "': cannot use " + options_.callable + ": " +
                             error);
  if (options_.timeout_s > 0) impl_->watchdog = std::thread([this] { impl_->watch(); });
}

void PythonStage::close() {
  if (!impl_->instance) return;
  py::gil_scoped_acquire gil;
  try {
    if (py::hasattr(impl_->instance, "close")) impl_->instance.attr("close")();
  } catch (py::error_already_set& e) {
    std::fprintf(stderr, "node '%s': close() raised %s\n", node_.c_str(),
                 describe_exception(e).c_str());
  }
}

namespace {

// The case's grid (D, H, W) from its image, or its labels; empty when it has neither.
std::vector<std::int64_t> case_grid(const Case& c) {
  for (const char* f : {"image", "labels"})
    if (c.has(f) && c.get(f)->ndim() == 3) return c.get(f)->shape();
  return {};
}

std::string type_name(const py::handle& o) {
  return py::str(py::type::of(o).attr("__name__")).cast<std::string>();
}

// A returned array checked against its declaration: dtype, one dimension per axis, and D, H, W
// equal to the case's grid. "" when it fits, else what differs.
std::string misfit(const FieldUse& f, const py::handle& a, const std::vector<std::int64_t>& grid) {
  if (!py::isinstance<py::array>(a)) return "is " + type_name(a) + ", not a numpy array";
  const std::string dtype = numpy_dtype(a);
  if (dtype != f.dtype) return "is " + dtype + ", declared " + f.dtype;
  const py::array arr = py::reinterpret_borrow<py::array>(a);
  std::vector<std::string> axes;
  std::stringstream ss(f.axes);
  for (std::string x; std::getline(ss, x, ',');) axes.push_back(x);
  std::string shape;
  for (py::ssize_t i = 0; i < arr.ndim(); ++i)
    shape += (i ? "x" : "") + std::to_string(arr.shape(i));
  if (!axes.empty() && static_cast<std::size_t>(arr.ndim()) != axes.size())
    return "has shape " + shape + ", declared axes " + f.axes;
  for (std::size_t i = 0; i < axes.size() && grid.size() == 3; ++i) {
    const std::string names = "DHW";
    const auto k = axes[i].size() == 1 ? names.find(axes[i][0]) : std::string::npos;
    if (k != std::string::npos && arr.shape(static_cast<py::ssize_t>(i)) != grid[k])
      return "has shape " + shape + ", but the case's grid is " + std::to_string(grid[0]) + "x" +
             std::to_string(grid[1]) + "x" + std::to_string(grid[2]) + " (D,H,W)";
  }
  return "";
}

std::string fmt_seconds(double s) {
  std::ostringstream o;
  o << s << " s";
  return o.str();
}

// What the code returned, applied to `out`; throws std::runtime_error naming what is wrong.
void apply_result(const py::object& result, const std::vector<FieldUse>& writes, const Case& in,
                  Case& out, const std::string& node) {
  if (result.is_none() && writes.empty()) return;
  if (!py::isinstance<py::dict>(result))
    throw std::runtime_error("returned " + type_name(result) +
                             "; return a dict: {\"fields\": ..., \"metrics\": ..., \"attrs\": "
                             "..., \"warnings\": ...} or {name: ndarray}");
  const py::dict d = py::reinterpret_borrow<py::dict>(result);
  bool structured = py::len(d) > 0;
  for (const auto& [k, v] : d) {
    const std::string key = py::str(k).cast<std::string>();
    structured &= key == "fields" || key == "metrics" || key == "attrs" || key == "warnings";
  }
  const py::object fields = structured ? d.attr("get")("fields", py::dict()) : py::object(d);
  if (!py::isinstance<py::dict>(fields))
    throw std::runtime_error("returned fields as " + type_name(fields) + ", not a dict");
  const auto grid = case_grid(in);
  std::set<std::string> returned;
  for (const auto& [k, v] : py::reinterpret_borrow<py::dict>(fields)) {
    const std::string name = py::str(k).cast<std::string>();
    const auto f = std::find_if(writes.begin(), writes.end(),
                                [&](const FieldUse& w) { return w.name == name; });
    if (f == writes.end())
      throw std::runtime_error("returned field '" + name +
                               "', which the node does not declare in 'writes'");
    if (const std::string why = misfit(*f, v, grid); !why.empty())
      throw std::runtime_error("field '" + name + "' " + why);
    out.set(name, to_ndarray(v));
    returned.insert(name);
  }
  for (const auto& w : writes)
    if (!w.optional && !returned.count(w.name))
      throw std::runtime_error("did not return field '" + w.name + "' (declared " + w.dtype +
                               (w.axes.empty() ? "" : " " + w.axes) + ")");
  if (!structured) return;
  if (d.contains("metrics")) {
    for (const auto& [k, v] : py::reinterpret_borrow<py::dict>(d["metrics"])) {
      const std::string name = py::str(k).cast<std::string>();
      if (py::isinstance<py::str>(v) || PyNumber_Check(v.ptr()) == 0)
        throw std::runtime_error("metric '" + name + "' is " + type_name(v) + ", not a number");
      out.set_metric(name, py::float_(py::reinterpret_borrow<py::object>(v)).cast<double>());
    }
  }
  if (d.contains("attrs")) {
    for (const auto& [k, v] : py::reinterpret_borrow<py::dict>(d["attrs"])) {
      if (!py::isinstance<py::str>(v))
        throw std::runtime_error("attribute '" + py::str(k).cast<std::string>() + "' is " +
                                 type_name(v) + ", not a string");
      out.set_attr(py::str(k).cast<std::string>(), v.cast<std::string>());
    }
  }
  if (d.contains("warnings")) {
    py::object w = d["warnings"];
    py::list lines;
    if (py::isinstance<py::str>(w))
      lines.append(w);
    else
      lines = py::list(w);
    for (const auto& line : lines)
      add_warning(out, node + ": " + py::str(line).cast<std::string>());
  }
}

}  // namespace

CasePtr PythonStage::process(const CasePtr& in) {
  {  // a slot in the user's code, waited for without the GIL
    std::unique_lock<std::mutex> lock(slots_mutex_);
    slots_free_.wait(lock, [&] { return busy_ < options_.concurrency; });
    ++busy_;
  }
  struct Release {
    PythonStage* s;
    ~Release() {
      {
        std::lock_guard<std::mutex> lock(s->slots_mutex_);
        --s->busy_;
      }
      s->slots_free_.notify_one();
    }
  } release{this};
  auto out = in->derive();
  std::string error;
  {
    py::gil_scoped_acquire gil;
    const int call = impl_->enter(options_.timeout_s);
    bool in_call = true, timed_out = false;
    try {
      py::object view = case_view(*in, options_.reads);
      py::object result = impl_->instance ? impl_->instance.attr("process")(view)
                                          : impl_->function(view, impl_->options);
      in_call = false;
      timed_out = impl_->leave(call);
      apply_result(result, writes_, *in, *out, node_);
    } catch (py::error_already_set& e) {
      if (in_call) timed_out = impl_->leave(call);
      error = describe_exception(e);
      if (timed_out)
        error = "the call ran longer than timeout_s = " + fmt_seconds(options_.timeout_s) + " (" +
                error + ")";
    } catch (const std::exception& e) {
      if (in_call) impl_->leave(call);
      error = e.what();
    }
  }
  if (!error.empty()) throw std::runtime_error(error);
  return out;
}

}  // namespace spineparse::plugins::python
