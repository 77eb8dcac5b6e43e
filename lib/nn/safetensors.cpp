#include "nn/safetensors.hpp"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <utility>

#include "spineparse/files.hpp"

namespace spineparse::nn {
using nlohmann::json;

namespace {

// The dtypes a safetensors file names, both ways.
const std::pair<const char*, torch::ScalarType> kDTypes[] = {
    {"F32", torch::kFloat32}, {"F64", torch::kFloat64}, {"F16", torch::kFloat16},
    {"BF16", torch::kBFloat16}, {"I64", torch::kInt64}, {"I32", torch::kInt32},
    {"I16", torch::kInt16},   {"I8", torch::kInt8},     {"U8", torch::kUInt8},
    {"BOOL", torch::kBool}};

torch::ScalarType dtype_from(const std::string& s, const std::string& where) {
  for (const auto& [name, type] : kDTypes)
    if (s == name) return type;
  throw std::runtime_error(where + ": unsupported dtype " + s);
}

std::string dtype_name(torch::ScalarType t) {
  for (const auto& [name, type] : kDTypes)
    if (t == type) return name;
  throw std::runtime_error("safetensors: cannot store dtype " + std::string(c10::toString(t)));
}

}  // namespace

TensorFile load_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open weights file " + path);
  in.seekg(0, std::ios::end);
  const std::uint64_t file_size = static_cast<std::uint64_t>(in.tellg());
  in.seekg(0);
  unsigned char len_bytes[8];
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(len_bytes), 8)) {
    throw std::runtime_error(path + " is not a safetensors file (too short)");
  }
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > file_size - 8 || header_len > (100u << 20)) {
    throw std::runtime_error(path + " is not a safetensors file (header length " +
                             std::to_string(header_len) + " does not fit the file)");
  }
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  json h;
  try {
    h = json::parse(header);
  } catch (const json::exception& e) {  // syntax, or a number out of range
    throw std::runtime_error(path + " is not a safetensors file (bad JSON header: " + e.what() +
                             ")");
  }
  const std::uint64_t data_start = 8 + header_len;
  const std::uint64_t data_size = file_size - data_start;
  TensorFile out;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") {
      for (auto m = it->begin(); m != it->end(); ++m)
        out.metadata[m.key()] = m->is_string() ? m->get<std::string>() : m->dump();
      continue;
    }
    const std::string where = path + ": tensor '" + it.key() + "'";
    const auto& e = it.value();
    if (!e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets")) {
      throw std::runtime_error(where + " lacks dtype, shape or data_offsets");
    }
    const auto dt = dtype_from(e["dtype"].get<std::string>(), where);
    std::vector<std::int64_t> shape = e["shape"].get<std::vector<std::int64_t>>();
    const auto off = e["data_offsets"].get<std::vector<std::uint64_t>>();
    std::int64_t numel = 1;
    for (auto s : shape) numel *= s;
    const std::uint64_t bytes = static_cast<std::uint64_t>(numel) * c10::elementSize(dt);
    if (off.size() != 2 || off[1] < off[0] || off[1] - off[0] != bytes || off[1] > data_size) {
      throw std::runtime_error(where +
                               ": data offsets do not match its shape or the file (truncated?)");
    }
    auto t = torch::empty(shape, torch::TensorOptions().dtype(dt));
    in.seekg(static_cast<std::streamoff>(data_start + off[0]));
    if (bytes && !in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(bytes))) {
      throw std::runtime_error(where + ": cannot read data (truncated file?)");
    }
    out.tensors[it.key()] = t;
  }
  return out;
}

void save_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  std::uint64_t offset = 0;
  std::vector<torch::Tensor> ordered;
  for (const auto& [name, t0] : tensors) {
    auto t = t0.detach().to(torch::kCPU).contiguous();
    const std::uint64_t bytes = static_cast<std::uint64_t>(t.numel()) * t.element_size();
    h[name] = {{"dtype", dtype_name(t.scalar_type())},
               {"shape", t.sizes().vec()},
               {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    ordered.push_back(t);
  }
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::string header = h.dump();
  while ((8 + header.size()) % 8) header += ' ';  // align the data as the reference writer does
  const std::string tmp = temp_path_for(path);
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw std::runtime_error("cannot write " + path);
    std::uint64_t n = header.size();
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
    out.write(reinterpret_cast<char*>(len), 8);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (const auto& t : ordered) {
      out.write(static_cast<const char*>(t.data_ptr()),
                static_cast<std::streamsize>(t.numel() * t.element_size()));
    }
    if (!out) {
      std::remove(tmp.c_str());
      throw std::runtime_error("write failed for " + path);
    }
  }
  commit_file(tmp, path);
}

}  // namespace spineparse::nn
