// What the file-reading fuzz targets share: the input written to a temporary file of this
// process, removed when the FuzzFile goes out of scope.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace spineparse::fuzz {

class FuzzFile {
 public:
  // `size` bytes of `data` in /tmp/spineparse-fuzz-PID`extension`.
  FuzzFile(const std::uint8_t* data, std::size_t size, const std::string& extension)
      : path_("/tmp/spineparse-fuzz-" + std::to_string(::getpid()) + extension) {
    if (FILE* f = std::fopen(path_.c_str(), "wb")) {
      std::fwrite(data, 1, size, f);
      std::fclose(f);
    }
  }
  ~FuzzFile() { std::remove(path_.c_str()); }
  FuzzFile(const FuzzFile&) = delete;
  FuzzFile& operator=(const FuzzFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// libFuzzer's entry for a reader of files: `read(path)` on the input written as a file with
// `extension`; an exception is the reader's expected answer to a bad file.
template <class Read>
int read_as_file(const std::uint8_t* data, std::size_t size, const std::string& extension,
                 Read&& read) {
  const FuzzFile file(data, size, extension);
  try {
    read(file.path());
  } catch (const std::exception&) {
  }
  return 0;
}

}  // namespace spineparse::fuzz
