// What a weights file says about its model, read without loading the weights (or LibTorch).
#pragma once

#include <map>
#include <string>

namespace spineparse::io {

// The "__metadata__" of a safetensors file (string values; other entries are skipped). Throws
// std::runtime_error naming the file when it is not a safetensors file.
std::map<std::string, std::string> safetensors_metadata(const std::string& path);

// Sets (adds or replaces) metadata entries of the safetensors file at `path`, rewriting it
// atomically with the same tensors (their bytes are copied unchanged). Throws naming the file.
void set_safetensors_metadata(const std::string& path,
                              const std::map<std::string, std::string>& entries);

// The metadata key of the axis codes a model was trained in ("PIL").
inline constexpr const char* kOrientationKey = "orientation";

}  // namespace spineparse::io
