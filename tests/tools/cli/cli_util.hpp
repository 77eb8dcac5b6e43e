// Running the spineparse binary from a test: command line in, exit code and output back.
#pragma once

#include <sys/wait.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <sstream>
#include <vector>
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
// The value of `column` in measurements.csv's row for a case and structure (NAN, with a test
// failure, when there is none).
inline double csv_number(const std::string& csv, const std::string& case_id, const std::string& structure,
                  const std::string& column) {
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);
  const auto split = [](const std::string& l) {
    std::vector<std::string> f;
    std::stringstream ss(l);
    for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
    return f;
  };
  const auto header = split(line);
  const auto col = std::find(header.begin(), header.end(), column) - header.begin();
  while (std::getline(in, line)) {
    const auto f = split(line);
    if (f.size() > 2 && f[0] == case_id && f[2] == structure) return std::stod(f.at(col));
  }
  ADD_FAILURE() << "no row " << case_id << " " << structure;
  return NAN;
}
}  // namespace cli_test

using namespace cli_test;
