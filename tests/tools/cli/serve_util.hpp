// For the DICOM node's tests: background processes, free ports, bounded waits, synthetic series.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "cli_util.hpp"
#include "dicom_fixtures.hpp"
#include "io/volume_io.hpp"

namespace serve_test {
namespace fs = std::filesystem;

// A command run in the background (sh -c 'exec COMMAND'), its output appended to a log file;
// killed with SIGKILL when the test leaves it running.
class Background {
 public:
  Background(const std::string& command, const std::string& log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string line = "exec " + command + " >>" + log + " 2>&1";
      ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Background() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  void signal(int sig) const { ::kill(pid_, sig); }
  // The exit code once it ended within timeout_s; -1 when it did not (then it is killed).
  int wait(double timeout_s) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < end) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return -1;
  }
  bool running() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
};

// A TCP port nothing listens on now, never the same twice in a process, and below Linux's
// ephemeral range (32768-60999), so that no client's outgoing connection takes it meanwhile.
inline int free_port() {
  static std::set<int> given;
  static std::mt19937 random(std::random_device{}());
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int port = 20000 + static_cast<int>(random() % 12000);
    if (given.count(port)) continue;
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool ok = ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(s);
    if (!ok) continue;
    given.insert(port);
    return port;
  }
  ADD_FAILURE() << "no free port in 20000-32000";
  return 0;
}

// Polls `done` every 200 ms for at most timeout_s seconds.
inline bool wait_until(const std::function<bool()>& done, double timeout_s) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return done();
}

inline int count_files(const fs::path& dir, const std::string& prefix = "") {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().filename().string().rfind(prefix, 0) == 0) ++n;
  return n;
}

// A small synthetic sagittal series (synth seed `seed`, `size` pixels) as classic MR files in
// `folder`.
inline void write_series(const fs::path& work, const std::string& folder, int seed,
                         const std::string& study_uid, const std::string& series_uid,
                         const std::string& size = "96 128") {
  const fs::path nii = work / ("synth" + std::to_string(seed) + "_" + size.substr(0, size.find(' ')));
  if (!fs::exists(nii / "original_mr/Case1.nii.gz")) {
    ASSERT_EQ(cli_test::sp("synth --cases 1 --seed " + std::to_string(seed) +
                           " --size " + size + " --no-masks --out " + nii.string())
                  .code,
              0);
  }
  const auto v = spineparse::io::read_image((nii / "original_mr/Case1.nii.gz").string());
  spineparse::testing::write_dicom_series(*v.data, v.geometry,
                                          {folder, series_uid, study_uid, seed, "sag T2"});
}

// A DCMTK tool with Nagle's algorithm off (TCP_NODELAY=1), as the node runs.
inline std::string dcmtk_tool(const std::string& name) { return "env TCP_NODELAY=1 /usr/bin/" + name; }
inline bool have_dcmtk_tools() { return fs::exists("/usr/bin/storescu"); }

}  // namespace serve_test
