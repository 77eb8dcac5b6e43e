#include "nn/int8_calibration.hpp"

#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace spineparse::nn {

std::string Int8Calibration::to_json() const {
  nlohmann::json j = {{"ranges", ranges}, {"cases", cases}};
  if (!std::isnan(agreement))
    j["agreement"] = {{"labels", agreement}, {"cases", checked_cases}, {"on", checked_on}};
  return j.dump();
}

Int8Calibration Int8Calibration::from_json(const std::string& text, const std::string& file) {
  try {
    const auto j = nlohmann::json::parse(text);
    Int8Calibration c;
    c.ranges = j.at("ranges").get<std::vector<float>>();
    c.cases = j.at("cases").get<int>();
    if (j.contains("agreement")) {
      const auto& a = j.at("agreement");
      c.agreement = a.at("labels").get<double>();
      c.checked_cases = a.at("cases").get<int>();
      c.checked_on = a.at("on").get<std::string>();
    }
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(file + ": " + kInt8CalibrationKey + " is not a calibration record (" +
                             e.what() + ")");
  }
}

Int8Calibration Int8Calibration::of_weights(const std::map<std::string, std::string>& metadata,
                                            const std::string& file) {
  const auto it = metadata.find(kInt8CalibrationKey);
  if (it == metadata.end())
    throw std::runtime_error(file + " has no int8 calibration: run `spineparse calibrate " + file +
                             " --data DIR` on cases like those it will segment");
  return from_json(it->second, file);
}

}  // namespace spineparse::nn
