// Running the spineparse binary from a test: command line in, exit code and output back.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

#include "test_util.hpp"

namespace cli_test {
struct Result {
  int code;
  std::string output;
};
// Runs a shell command line, stderr with stdout.
inline Result shell(const std::string& command) {
  const std::string cmd = command + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  while (std::size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}
inline Result sp(const std::string& args) {
  return shell(std::string(SPINEPARSE_CLI) + " " + args);
}
// Whether this build has the network plugins (LibTorch); the tests that run them skip otherwise.
inline bool has_networks() { return sp("stages coarse.gcsn").code == 0; }
inline std::string graph(const std::string& name) {
  return spineparse::testing::source_dir() + "/graphs/" + name;
}
}  // namespace cli_test

using namespace cli_test;
