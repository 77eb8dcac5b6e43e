// libFuzzer: the checks every DICOM file passes before GDCM's or ITK's decoders see it, on
// arbitrary bytes. Any input either gives facts a decoder can be trusted with or throws
// std::runtime_error; nothing else (no abort, no other exception) is allowed.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>

#include "io/dicom_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto f = spineparse::io::check_dicom_bytes(reinterpret_cast<const char*>(data), size,
                                                     "fuzz.dcm");
    const bool bits_ok = f.bits_allocated == 8 || f.bits_allocated == 16 || f.bits_allocated == 32;
    if (f.rows < 1 || f.columns < 1 || !bits_ok || f.bits_stored < 1 ||
        f.bits_stored > f.bits_allocated)
      std::abort();
    if (f.has_pixel_spacing && !(f.pixel_spacing[0] > 0 && f.pixel_spacing[1] > 0)) std::abort();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
