// libFuzzer: the checkpoint importer (zip archive, then the pickle opcodes torch.save uses) on
// an arbitrary file.
#include "fuzz_file.hpp"
#include "nn/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return spineparse::fuzz::read_as_file(data, size, ".pytorch", [](const std::string& path) {
    (void)spineparse::nn::read_checkpoint(path);
  });
}
