#include "io/weights_metadata.hpp"

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace spineparse::io {

std::map<std::string, std::string> safetensors_metadata(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw std::runtime_error("cannot open weights file " + path);
  const auto size = static_cast<std::uint64_t>(f.tellg());
  unsigned char len_bytes[8] = {};
  f.seekg(0);
  std::uint64_t len = 0;
  if (size >= 8 && f.read(reinterpret_cast<char*>(len_bytes), 8))
    for (int i = 7; i >= 0; --i) len = (len << 8) | len_bytes[i];
  if (size < 8 || len == 0 || len > size - 8 || len > (std::uint64_t{100} << 20))
    throw std::runtime_error(path + " is not a safetensors file (bad header length)");
  std::string header(static_cast<std::size_t>(len), '\0');
  if (!f.read(header.data(), static_cast<std::streamsize>(len)))
    throw std::runtime_error("cannot read the header of " + path);
  std::map<std::string, std::string> out;
  try {
    const auto j = nlohmann::json::parse(header);
    if (j.contains("__metadata__") && j["__metadata__"].is_object())
      for (const auto& [k, v] : j["__metadata__"].items())
        if (v.is_string()) out[k] = v.get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + " is not a safetensors file (header: " + e.what() + ")");
  }
  return out;
}

}  // namespace spineparse::io
