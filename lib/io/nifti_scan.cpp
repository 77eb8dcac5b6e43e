#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "io/header.hpp"
#include "io/volume_io.hpp"

namespace spineparse::io {

namespace {
template <typename T>
T get(const unsigned char* p, bool swap) {
  unsigned char b[sizeof(T)];
  std::memcpy(b, p, sizeof(T));
  if (swap) std::reverse(b, b + sizeof(T));
  T v;
  std::memcpy(&v, b, sizeof(T));
  return v;
}

// Counts non-finite floats among the whole elements of buf[0, n); returns the bytes left over.
std::size_t count_non_finite(const unsigned char* buf, std::size_t n, int datatype, bool swap,
                             std::int64_t& non_finite) {
  const std::size_t elem = datatype == 16 ? 4 : datatype == 64 ? 8 : 1;
  const std::size_t whole = n - n % elem;
  if (datatype == 16) {
    for (std::size_t i = 0; i < whole; i += 4) non_finite += !std::isfinite(get<float>(buf + i, swap));
  } else if (datatype == 64) {
    for (std::size_t i = 0; i < whole; i += 8)
      non_finite += !std::isfinite(get<double>(buf + i, swap));
  }
  return n - whole;
}
}  // namespace

NiftiScan scan_nifti(const std::string& path, const HeaderFacts& h,
                     std::vector<unsigned char>* keep) {
  NiftiScan s;
  s.is_nifti = true;
  s.data_bytes_expected = h.data_bytes;
  gzFile f = gzopen(h.data_file.c_str(), "rb");  // also reads uncompressed files transparently
  if (!f) {
    s.problem = "cannot open " + h.data_file;
    return s;
  }
  gzbuffer(f, 1 << 17);
  if (h.data_offset > 0 && gzseek(f, h.data_offset, SEEK_SET) != h.data_offset) {
    s.problem = "data starts past the end of the file (vox_offset " +
                std::to_string(h.data_offset) + ")";
    gzclose(f);
    return s;
  }
  if (keep) keep->reserve(keep->size() + static_cast<std::size_t>(h.data_bytes));
  std::vector<unsigned char> buf(1 << 20);
  std::int64_t found = 0;
  std::size_t carry = 0;  // bytes of a partial element carried between reads
  while (found < h.data_bytes) {
    const auto want = std::min<std::int64_t>(static_cast<std::int64_t>(buf.size() - carry),
                                             h.data_bytes - found);
    const int n = gzread(f, buf.data() + carry, static_cast<unsigned>(want));
    if (n <= 0) break;
    if (keep) keep->insert(keep->end(), buf.data() + carry, buf.data() + carry + n);
    found += n;
    const std::size_t avail = carry + static_cast<std::size_t>(n);
    carry = count_non_finite(buf.data(), avail, h.datatype, h.swap, s.non_finite);
    if (carry) std::memmove(buf.data(), buf.data() + avail - carry, carry);
  }
  s.data_bytes_found = found;
  // Read on to the end, so that a damaged gzip trailer (CRC, length) is found too.
  if (found == h.data_bytes)
    while (gzread(f, buf.data(), static_cast<unsigned>(buf.size())) > 0) {
    }
  int err = 0;
  const char* msg = gzerror(f, &err);
  if (err != Z_OK && err != Z_BUF_ERROR) s.problem = msg ? msg : "compressed stream error";
  if (err == Z_BUF_ERROR && found < h.data_bytes) s.problem = "compressed stream ends early";
  gzclose(f);
  (void)path;
  return s;
}

NiftiScan scan_nifti(const std::string& path, std::vector<unsigned char>* keep) {
  NiftiScan s;
  try {
    const HeaderFacts h = check_volume_file(path, ReadLimits{0, 0});
    if (h.format != "nifti1" && h.format != "nifti2") return s;
    return scan_nifti(path, h, keep);
  } catch (const std::exception& e) {
    s.problem = e.what();
    return s;
  }
}

}  // namespace spineparse::io
