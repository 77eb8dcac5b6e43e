// What a weights file says about its model, read without loading the weights (or LibTorch).
#pragma once

#include <map>
#include <string>

namespace spineparse::io {

// The "__metadata__" of a safetensors file (string values; other entries are skipped). Throws
// std::runtime_error naming the file when it is not a safetensors file.
std::map<std::string, std::string> safetensors_metadata(const std::string& path);

// The metadata key of the axis codes a model was trained in ("PIL").
inline constexpr const char* kOrientationKey = "orientation";

}  // namespace spineparse::io
