// libFuzzer: the checks every DICOM file passes before GDCM's or ITK's decoders see it, on
// arbitrary bytes, as readers run them: in the helper spineparse-dicom-check (built beside this
// target), since Debian's GDCM asserts inside its own parser on some damaged headers. Any input
// either gives facts a decoder can be trusted with or throws std::runtime_error; nothing else
// (no abort of this process, no other exception) is allowed.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "io/dicom_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/tmp/fuzz_dicom_" + std::to_string(::getpid()) + ".dcm";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    const auto facts = spineparse::io::check_dicom_file_isolated(path);
    const bool bits_ok = facts.bits_allocated == 8 || facts.bits_allocated == 16 ||
                         facts.bits_allocated == 32;
    if (facts.rows < 1 || facts.columns < 1 || !bits_ok || facts.bits_stored < 1 ||
        facts.bits_stored > facts.bits_allocated)
      std::abort();
    if (facts.has_pixel_spacing && !(facts.pixel_spacing[0] > 0 && facts.pixel_spacing[1] > 0))
      std::abort();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
