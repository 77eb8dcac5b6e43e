// safetensors files: an 8-byte little-endian header length, a JSON header
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then raw
// little-endian data. The project's native weight format, read and written without extra deps.
#pragma once

#include <torch/types.h>

#include <map>
#include <string>

namespace spineparse::nn {

struct TensorFile {
  std::map<std::string, torch::Tensor> tensors;  // CPU, contiguous
  std::map<std::string, std::string> metadata;
};

// Throws std::runtime_error naming the file and, where it applies, the tensor.
TensorFile load_safetensors(const std::string& path);
// Writes atomically (temporary file, then rename). Tensors are written in name order.
void save_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace spineparse::nn
