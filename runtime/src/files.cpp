#include "spineparse/files.hpp"

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace spineparse {
namespace fs = std::filesystem;

std::string temp_path_for(const std::string& final_path) {
  static std::atomic<unsigned> counter{0};
  fs::path p(final_path);
  std::string name = p.filename().string();
  std::string stem = name, ext;
  // Keep compound extensions such as .nii.gz intact.
  for (const char* e : {".nii.gz", ".tar.gz"}) {
    const std::string s(e);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      stem = name.substr(0, name.size() - s.size());
      ext = s;
      break;
    }
  }
  if (ext.empty()) {
    ext = p.extension().string();
    stem = p.stem().string();
  }
  std::string tmp = "." + stem + ".tmp-" + std::to_string(::getpid()) + "-" +
                    std::to_string(counter.fetch_add(1)) + ext;
  return (p.parent_path() / tmp).string();
}

void commit_file(const std::string& tmp_path, const std::string& final_path) {
  if (std::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp_path.c_str());
    throw std::runtime_error("cannot move " + tmp_path + " to " + final_path + ": " + why);
  }
}

void write_file_atomic(const std::string& final_path, const std::string& text) {
  fs::path parent = fs::path(final_path).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  const std::string tmp = temp_path_for(final_path);
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
    out << text;
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw std::runtime_error("write failed for " + final_path);
    }
  }
  commit_file(tmp, final_path);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool natural_less(const std::string& a, const std::string& b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      std::size_t i2 = i, j2 = j;
      while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
      std::string na = a.substr(i, i2 - i), nb = b.substr(j, j2 - j);
      na.erase(0, std::min(na.find_first_not_of('0'), na.size()));
      nb.erase(0, std::min(nb.find_first_not_of('0'), nb.size()));
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = i2;
      j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return (a.size() - i) < (b.size() - j);
}

}  // namespace spineparse
