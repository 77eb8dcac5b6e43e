// libFuzzer: the NIfTI-1/2 header checks on arbitrary bytes. Any input either parses to facts
// that are self-consistent or throws std::runtime_error; nothing else is allowed.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>

#include "io/header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto h = spineparse::io::parse_nifti_header(data, size, "fuzz.nii");
    if (h.voxels < 1 || h.data_bytes != h.voxels * h.element_bytes || h.size.empty()) std::abort();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
