// The parameter types: values, their limits as text, typed access.
#include "spineparse/params.hpp"

#include <cmath>
#include <iterator>
#include <sstream>
#include <stdexcept>

#include "spineparse/text.hpp"

namespace spineparse {

std::string param_limits(const ParamSpec& p) {
  auto num = [](double v) { return param_value_to_string(ParamValue(v)); };
  std::vector<std::string> parts;
  if (!p.allowed.empty()) {
    parts.push_back("one of: " + join(p.allowed));
  }
  if (p.min && p.max)
    parts.push_back(num(*p.min) + " to " + num(*p.max));
  else if (p.min)
    parts.push_back("at least " + num(*p.min));
  else if (p.max)
    parts.push_back("at most " + num(*p.max));
  if (p.must_exist)
    parts.push_back("must exist" +
                    (p.exists_unless.empty() ? "" : " unless " + p.exists_unless + " is true"));
  std::string out;
  for (const auto& s : parts) out += (out.empty() ? "" : "; ") + s;
  return out;
}

const char* param_type_name(ParamType t) {
  // In the enum's order.
  static constexpr const char* kNames[] = {"bool",   "int",         "float", "string",
                                           "path",   "string list", "JSON",  "path list"};
  static_assert(std::size(kNames) == static_cast<std::size_t>(ParamType::kPathList) + 1);
  const auto i = static_cast<std::size_t>(t);
  return i < std::size(kNames) ? kNames[i] : "?";
}

std::string param_value_to_string(const ParamValue& v) {
  struct V {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const {
      std::ostringstream s;
      s << d;
      return s.str();
    }
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(const std::vector<std::string>& l) const {
      return "[" + join(l) + "]";
    }
  };
  return std::visit(V{}, v);
}

const ParamValue& Params::at(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw std::out_of_range("parameter '" + key + "' is not set");
  return it->second;
}

bool Params::get_bool(const std::string& key) const { return std::get<bool>(at(key)); }
std::int64_t Params::get_int(const std::string& key) const {
  return std::get<std::int64_t>(at(key));
}
double Params::get_float(const std::string& key) const {
  const auto& v = at(key);
  if (auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  return std::get<double>(v);
}
const std::string& Params::get_string(const std::string& key) const {
  return std::get<std::string>(at(key));
}
const std::vector<std::string>& Params::get_string_list(const std::string& key) const {
  return std::get<std::vector<std::string>>(at(key));
}

}  // namespace spineparse
