// Helpers shared by the tests: temporary folders and the locations of plugins and references.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "build_paths.hpp"

namespace spineparse::testing {

inline std::string test_plugin_dir() { return TEST_PLUGIN_DIR; }
inline std::string build_plugin_dir() { return SPINEPARSE_BUILD_PLUGIN_DIR; }
inline std::string source_dir() { return SPINEPARSE_SOURCE_DIR; }
// ../shared/reference beside the checkout (read in place, never copied).
inline std::string reference_dir() {
  if (const char* e = std::getenv("SPINEPARSE_REFERENCE_DIR")) return e;
  return (std::filesystem::path(SPINEPARSE_SOURCE_DIR) / ".." / "shared" / "reference")
      .lexically_normal()
      .string();
}

// A fresh folder under the system temp dir, removed when the object goes away.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("spineparse-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {  // SPINEPARSE_TEST_KEEP=1 keeps the folder to look into a failure
    if (std::getenv("SPINEPARSE_TEST_KEEP")) {
      std::fprintf(stderr, "kept %s\n", path_.string().c_str());
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  std::filesystem::path operator/(const std::string& s) const { return path_ / s; }

 private:
  std::filesystem::path path_;
};

}  // namespace spineparse::testing
