// Small file helpers shared by the runtime and plugins.
#pragma once

#include <string>

namespace spineparse {

// A unique temporary name in the same folder as `final_path` (so rename() is atomic), hidden and
// carrying the final extension so that writers choosing a format by extension still work:
// "dir/.seg_Case1.nii.gz" -> "dir/.seg_Case1.tmp-<pid>-<n>.nii.gz".
std::string temp_path_for(const std::string& final_path);

// Renames tmp over final_path atomically; removes tmp and throws std::runtime_error on failure.
void commit_file(const std::string& tmp_path, const std::string& final_path);

// Writes text to final_path atomically (temporary file, then rename).
void write_file_atomic(const std::string& final_path, const std::string& text);

std::string read_file(const std::string& path);  // throws std::runtime_error naming the file

// Natural order: "Case2" < "Case10".
bool natural_less(const std::string& a, const std::string& b);

}  // namespace spineparse
