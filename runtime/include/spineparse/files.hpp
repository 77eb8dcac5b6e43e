// Small file helpers shared by the runtime and plugins.
#pragma once

#include <string>

namespace spineparse {

// A unique temporary name in the same folder as `final_path` (so rename() is atomic), hidden and
// carrying the final extension so that writers choosing a format by extension still work:
// "dir/seg_Case1.nii.gz" -> "dir/.seg_Case1.tmp-<host>-<pid>-<n>.nii.gz".
std::string temp_path_for(const std::string& final_path);

// Flushes tmp_path to disk (fsync), checks that it is a regular file of at least one byte (or of
// exactly `expected_size` when >= 0), renames it over final_path atomically and flushes the
// folder. On any failure removes tmp and throws std::runtime_error naming final_path.
void commit_file(const std::string& tmp_path, const std::string& final_path,
                 long long expected_size);
void commit_file(const std::string& tmp_path, const std::string& final_path);  // any size >= 1

// Writes bytes to final_path atomically: every write checked (a full disk is an error, never a
// short file), then commit_file.
void write_file_atomic(const std::string& final_path, const std::string& bytes);

// Removes temporary files (temp_path_for names) under `dir` left by runs that were killed: those
// of this host whose process is gone, and any older than a day. Returns how many were removed.
int remove_stale_temporaries(const std::string& dir);

std::string read_file(const std::string& path);  // throws std::runtime_error naming the file

// An output file name from a name template: each "{id}" replaced by the case id, left to right,
// never rescanning what was put in (an id may itself contain "{id}").
inline std::string with_case_id(std::string name, const std::string& id) {
  for (std::size_t p = 0; (p = name.find("{id}", p)) != std::string::npos; p += id.size())
    name.replace(p, 4, id);
  return name;
}

// Natural order: "Case2" < "Case10".
bool natural_less(const std::string& a, const std::string& b);

}  // namespace spineparse
