#include "spineparse/files.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace spineparse {
namespace fs = std::filesystem;

namespace {

std::string this_host() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "host";
  std::string h(buf);
  for (char& c : h)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return h;
}

[[noreturn]] void fail_write(const std::string& tmp, const std::string& final_path,
                             const std::string& why) {
  ::unlink(tmp.c_str());
  throw std::runtime_error("cannot write " + final_path + ": " + why);
}

}  // namespace

std::string temp_path_for(const std::string& final_path) {
  static std::atomic<unsigned> counter{0};
  static const std::string host = this_host();
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
  std::string tmp = "." + stem + ".tmp-" + host + "-" + std::to_string(::getpid()) + "-" +
                    std::to_string(counter.fetch_add(1)) + ext;
  return (p.parent_path() / tmp).string();
}

void commit_file(const std::string& tmp_path, const std::string& final_path,
                 long long expected_size) {
  const int fd = ::open(tmp_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_write(tmp_path, final_path, std::strerror(errno));
  struct stat st {};
  const bool synced = ::fsync(fd) == 0;
  const int sync_errno = errno;
  const bool stat_ok = ::fstat(fd, &st) == 0;
  ::close(fd);
  if (!synced) fail_write(tmp_path, final_path, std::strerror(sync_errno));
  if (!stat_ok || !S_ISREG(st.st_mode)) fail_write(tmp_path, final_path, "not a regular file");
  if (st.st_size == 0) fail_write(tmp_path, final_path, "the writer produced an empty file");
  if (expected_size >= 0 && st.st_size != expected_size)
    fail_write(tmp_path, final_path,
               std::to_string(st.st_size) + " of " + std::to_string(expected_size) +
                   " bytes written (disk full?)");
  if (std::rename(tmp_path.c_str(), final_path.c_str()) != 0)
    fail_write(tmp_path, final_path, std::string("rename failed: ") + std::strerror(errno));
  std::string dir = fs::path(final_path).parent_path().string();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // the rename itself on disk; some filesystems refuse, which is harmless
    ::close(dfd);
  }
}

void commit_file(const std::string& tmp_path, const std::string& final_path) {
  commit_file(tmp_path, final_path, -1);
}

void write_file_atomic(const std::string& final_path, const std::string& bytes) {
  fs::path parent = fs::path(final_path).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  const std::string tmp = temp_path_for(final_path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail_write(tmp, final_path, std::strerror(errno));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = n < 0 ? std::strerror(errno) : "no progress";
      ::close(fd);
      fail_write(tmp, final_path, why);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) fail_write(tmp, final_path, std::strerror(errno));
  if (bytes.empty()) {  // an empty file is legitimate here: commit it without the size check
    if (std::rename(tmp.c_str(), final_path.c_str()) != 0)
      fail_write(tmp, final_path, std::strerror(errno));
    return;
  }
  commit_file(tmp, final_path, static_cast<long long>(bytes.size()));
}

int remove_stale_temporaries(const std::string& dir) {
  static const std::regex kTemp(R"(^\..*\.tmp-(.+)-([0-9]+)-[0-9]+(\..*)?$)");
  const std::string host = this_host();
  int removed = 0;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::smatch m;
    const std::string name = it->path().filename().string();
    if (!std::regex_match(name, m, kTemp) || !it->is_regular_file(ec)) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(m[2].str()));
    const bool dead = m[1].str() == host && ::kill(pid, 0) != 0 && errno == ESRCH;
    const auto age = fs::file_time_type::clock::now() - fs::last_write_time(it->path(), ec);
    if ((dead || age > std::chrono::hours(24)) && fs::remove(it->path(), ec)) ++removed;
  }
  return removed;
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
