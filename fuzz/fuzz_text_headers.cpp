// libFuzzer: NRRD and MetaImage header parsing (the first byte picks which) on arbitrary text.
// Detached data files are resolved inside a folder that does not exist.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include "io/header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    const auto h =
        (data[0] & 1)
            ? spineparse::io::parse_nrrd_header(text, "fuzz.nrrd", "/nonexistent/fuzz")
            : spineparse::io::parse_metaimage_header(text, "fuzz.mha", "/nonexistent/fuzz");
    if (h.voxels < 1 || h.data_bytes < h.voxels) std::abort();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
