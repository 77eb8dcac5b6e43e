#include "output_folder.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "spineparse/run_error.hpp"

namespace spineparse {
namespace fs = std::filesystem;

std::string host_name() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

std::string utc_time(std::time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::time_t parse_utc_time(const std::string& text) {
  std::tm tm{};
  const char* end = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (!end || *end) return -1;
  return ::timegm(&tm);
}

namespace {

// Who holds the lock on fd: shards (a shared lock) or the exclusive holder that wrote itself in.
std::string holder(int fd) {
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (::fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type == F_RDLCK)
    return "shards of a sharded run, one of them pid " + std::to_string(fl.l_pid);
  char text[256] = {};
  const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
  std::string who = n > 0 ? std::string(text, static_cast<std::size_t>(n)) : "";
  while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
  return who.empty() ? "another process" : who;
}

}  // namespace

OutputLock::OutputLock(const std::string& dir, const Shard& shard) {
  const std::string main = (fs::path(dir) / ".spineparse.lock").string();
  if (!shard.active()) {
    main_ = take(main, F_WRLCK, "");
    return;
  }
  main_ = take(main, F_RDLCK, "");
  fs::create_directories(fs::path(dir) / "shards");
  shard_ =
      take((fs::path(dir) / "shards" / ("." + shard.name() + ".lock")).string(), F_WRLCK,
           "shard " + std::to_string(shard.index) + "/" + std::to_string(shard.count) + " of ");
}

OutputLock::~OutputLock() {  // closing releases the locks
  if (shard_ >= 0) ::close(shard_);
  ::close(main_);
}

// Locks `path` (creating it) with `type`; the exclusive holder writes itself into it.
int OutputLock::take(const std::string& path, short type, const std::string& what) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw RunError("cannot create " + path + ": " + std::strerror(errno));
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  if (::fcntl(fd, F_SETLK, &fl) != 0) {
    const int err = errno;
    if (err != EACCES && err != EAGAIN) {  // no lock could be taken at all (ENOLCK, ...)
      ::close(fd);
      if (main_ >= 0) ::close(main_);
      main_ = -1;
      throw RunError("cannot lock " + path + ": " + std::strerror(err) +
                     " (the output folder needs a file system with POSIX locks: NFSv4, or NFSv3 "
                     "with lockd)");
    }
    const std::string who = holder(fd);
    ::close(fd);
    if (main_ >= 0) ::close(main_);
    main_ = -1;
    const std::string dir = fs::path(path).parent_path().string();
    throw RunError(what + "output folder " + dir + " is in use by spineparse (" + who +
                   "); wait for that run to end or give another --output" +
                   (type == F_RDLCK ? " (a shard cannot join an unsharded run)" : ""));
  }
  if (type == F_WRLCK) {
    const std::string me = "pid " + std::to_string(::getpid()) + " on host " + host_name() + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) < 0) {
      // the lock holds regardless; only the message of a refused run would lack the holder
    }
  }
  return fd;
}

}  // namespace spineparse
