#include "io/weights_metadata.hpp"

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "spineparse/files.hpp"

namespace spineparse::io {

namespace {

// The header length and header text of a safetensors file.
std::pair<std::uint64_t, std::string> read_header(const std::string& path) {
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
  return {len, header};
}

}  // namespace

std::map<std::string, std::string> safetensors_metadata(const std::string& path) {
  const auto header = read_header(path).second;
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

void set_safetensors_metadata(const std::string& path,
                              const std::map<std::string, std::string>& entries) {
  const auto [len, header] = read_header(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + " is not a safetensors file (header: " + e.what() + ")");
  }
  if (!j.is_object()) throw std::runtime_error(path + " is not a safetensors file");
  for (const auto& [k, v] : entries) j["__metadata__"][k] = v;
  std::string text = j.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // tensor data stays 8-byte aligned
  const std::string bytes = read_file(path);
  std::string out;
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((static_cast<std::uint64_t>(text.size()) >> (8 * i)) & 0xff));
  out += text;
  out.append(bytes, static_cast<std::size_t>(8 + len), std::string::npos);
  write_file_atomic(path, out);
}

}  // namespace spineparse::io
