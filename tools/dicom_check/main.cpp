// spineparse-dicom-check FILE: the checks of io/dicom_check.hpp on one file, in a process of its
// own, so that GDCM aborting inside its parser (Debian's build keeps its asserts) ends this
// process, never a run. Prints "OK" and the facts, or "NO" and the reason; exit status 0.
#include <cstdio>
#include <exception>
#include <string>

#include "io/dicom_check.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: spineparse-dicom-check FILE\n");
    return 2;
  }
  std::string answer;
  try {
    answer = "OK\n" + spineparse::io::serialise(spineparse::io::check_dicom_file(argv[1]));
  } catch (const std::exception& e) {
    answer = std::string("NO\n") + e.what();
  }
  std::fwrite(answer.data(), 1, answer.size(), stdout);
  return 0;
}
