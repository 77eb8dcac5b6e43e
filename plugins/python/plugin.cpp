// Entry point of the python plugin: stages written in Python (python.stage).
#include "python_stage.hpp"
#include "spineparse/plugin_api.hpp"
#include "spineparse/registry.hpp"

namespace spineparse {
void register_python_stages(Registry& r) {
  // Python code reads any attribute (optional) and writes any it returns.
  StageAttributes any;
  any.writes_any = true;
  r.add_stage<plugins::python::PythonStage>(plugins::python::python_description(), any);
}
}  // namespace spineparse

SPINEPARSE_PLUGIN("python", "0.1.0", spineparse::register_python_stages)
