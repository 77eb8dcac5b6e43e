// Stage parameters: their declared specs and the resolved values a stage instance receives.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace spineparse {

// kJson (ABI 2.5): any JSON value, held as its text (a std::string); kPathList (ABI 2.5): a list
// of paths, each relative one resolved as a kPath is.
enum class ParamType { kBool, kInt, kFloat, kString, kPath, kStringList, kJson, kPathList };
const char* param_type_name(ParamType t);

using ParamValue = std::variant<bool, std::int64_t, double, std::string, std::vector<std::string>>;

std::string param_value_to_string(const ParamValue& v);

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::kString;
  std::optional<ParamValue> default_value;  // absent: no default
  bool required = false;
  std::string help;
  std::vector<std::string> allowed;  // for strings: the only accepted values (empty: any)
  std::optional<double> min, max;    // for numbers: inclusive bounds
  // For paths the stage reads: validation refuses a non-empty value that does not exist,
  // unless the bool parameter named by exists_unless is true (e.g. random_weights).
  bool must_exist = false;
  std::string exists_unless;
};

// What a spec accepts beyond its type, in words ("" when anything of the type): "one of: a, b",
// "at least 16", "0 to 4096", "must exist unless random_weights is true".
std::string param_limits(const ParamSpec& spec);

// Resolved values of one stage instance: every declared parameter with a default or a given value.
class Params {
 public:
  Params() = default;
  explicit Params(std::map<std::string, ParamValue> values) : values_(std::move(values)) {}

  bool has(const std::string& key) const { return values_.count(key) != 0; }
  bool get_bool(const std::string& key) const;
  std::int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;               // ints convert
  const std::string& get_string(const std::string& key) const;  // strings, paths, JSON text
  const std::vector<std::string>& get_string_list(const std::string& key) const;  // and path lists

  const std::map<std::string, ParamValue>& values() const { return values_; }
  void set(const std::string& key, ParamValue v) { values_[key] = std::move(v); }

 private:
  const ParamValue& at(const std::string& key) const;
  std::map<std::string, ParamValue> values_;
};

}  // namespace spineparse
