// A parameter value as JSON, as graph files hold it (runtime-internal).
#pragma once

#include <nlohmann/json.hpp>
#include <variant>

#include "spineparse/params.hpp"

namespace spineparse {

inline nlohmann::json param_to_json(const ParamValue& v) {
  return std::visit([](const auto& x) { return nlohmann::json(x); }, v);
}

}  // namespace spineparse
