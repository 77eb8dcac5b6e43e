// libFuzzer: the checkpoint importer (zip archive, then the pickle opcodes torch.save uses) on
// an arbitrary file.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "nn/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = "/tmp/spineparse-fuzz-" + std::to_string(::getpid()) + ".pytorch";
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  try {
    auto c = spineparse::nn::read_checkpoint(path);
    (void)c;
  } catch (const std::exception&) {
  }
  std::remove(path.c_str());
  return 0;
}
