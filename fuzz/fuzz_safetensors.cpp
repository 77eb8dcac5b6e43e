// libFuzzer: the safetensors reader (header length, JSON header, offsets, dtypes) on an
// arbitrary file.
#include "fuzz_file.hpp"
#include "nn/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return spineparse::fuzz::read_as_file(data, size, ".safetensors", [](const std::string& path) {
    (void)spineparse::nn::load_safetensors(path);
  });
}
