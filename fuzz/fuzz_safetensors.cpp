// libFuzzer: the safetensors reader (header length, JSON header, offsets, dtypes) on an
// arbitrary file.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "nn/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = "/tmp/spineparse-fuzz-" + std::to_string(::getpid()) + ".safetensors";
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  try {
    auto t = spineparse::nn::load_safetensors(path);
    (void)t;
  } catch (const std::exception&) {
  }
  std::remove(path.c_str());
  return 0;
}
