#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "io/header.hpp"
#include "io/nifti_data.hpp"

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

namespace {

// NIfTI voxels (file order: x = H fastest, then W, then slices) -> C-order [D, H, W] float,
// reading each element by memcpy (the bytes carry no type), swapping its bytes when asked and
// applying the header's intensity scaling (scl_slope 0: none).
template <typename T>
void decode_to_dhw(const unsigned char* src, const HeaderFacts& h, float* out, std::int64_t H,
                   std::int64_t W, std::int64_t D) {
  const bool scale = h.scl_slope != 0 && !(h.scl_slope == 1 && h.scl_inter == 0);
  auto value = [&](std::int64_t i) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, src + i * sizeof(T), sizeof(T));
    if (h.swap) std::reverse(b, b + sizeof(T));
    T v;
    std::memcpy(&v, b, sizeof(T));
    return scale ? static_cast<float>(static_cast<double>(v) * h.scl_slope + h.scl_inter)
                 : static_cast<float>(v);
  };
  constexpr std::int64_t B = 32;
  for (std::int64_t z = 0; z < D; ++z)
    for (std::int64_t y0 = 0; y0 < W; y0 += B)
      for (std::int64_t x0 = 0; x0 < H; x0 += B)
        for (std::int64_t y = y0; y < std::min(W, y0 + B); ++y)
          for (std::int64_t x = x0; x < std::min(H, x0 + B); ++x)
            out[(z * H + x) * W + y] = value((z * W + y) * H + x);
}

void decode_nifti(const HeaderFacts& h, const unsigned char* p, float* out, std::int64_t H,
                  std::int64_t W, std::int64_t D) {
  switch (h.datatype) {
    case 2: return decode_to_dhw<std::uint8_t>(p, h, out, H, W, D);
    case 4: return decode_to_dhw<std::int16_t>(p, h, out, H, W, D);
    case 8: return decode_to_dhw<std::int32_t>(p, h, out, H, W, D);
    case 16: return decode_to_dhw<float>(p, h, out, H, W, D);
    case 64: return decode_to_dhw<double>(p, h, out, H, W, D);
    case 256: return decode_to_dhw<std::int8_t>(p, h, out, H, W, D);
    case 512: return decode_to_dhw<std::uint16_t>(p, h, out, H, W, D);
    case 768: return decode_to_dhw<std::uint32_t>(p, h, out, H, W, D);
    case 1024: return decode_to_dhw<std::int64_t>(p, h, out, H, W, D);
    case 1280: return decode_to_dhw<std::uint64_t>(p, h, out, H, W, D);
    default: throw std::logic_error("decode_nifti: datatype not checked");
  }
}

}  // namespace

NdArrayPtr read_nifti_voxels(const std::string& path, const HeaderFacts& h) {
  std::vector<unsigned char> bytes;
  const NiftiScan scan = scan_nifti(path, h, &bytes);
  if (scan.data_bytes_found < scan.data_bytes_expected) {
    throw std::runtime_error(path + " is truncated: " + std::to_string(scan.data_bytes_found) +
                             " of " + std::to_string(scan.data_bytes_expected) +
                             " data bytes present" +
                             (scan.problem.empty() ? "" : " (" + scan.problem + ")"));
  }
  if (!scan.problem.empty()) throw std::runtime_error(path + " is corrupt: " + scan.problem);
  if (scan.non_finite > 0) {
    throw std::runtime_error(path + " has " + std::to_string(scan.non_finite) +
                             " non-finite voxels (NaN or infinity)");
  }
  std::int64_t H = 1, W = 1, D = 1;
  for (std::size_t i = 0; i < h.size.size(); ++i) (i == 0 ? H : i == 1 ? W : D) *= h.size[i];
  auto arr = NdArray::make<float>({D, H, W});
  decode_nifti(h, bytes.data(), arr->data<float>(), H, W, D);
  return arr;
}

std::string volume_problem(const std::string& path) {
  try {
    const HeaderFacts h = check_volume_file(path, ReadLimits{0, 0});
    if ((h.format == "nifti1" || h.format == "nifti2") && h.data_file == path) {
      const NiftiScan s = scan_nifti(path, h, nullptr);
      if (s.data_bytes_found < s.data_bytes_expected)
        return "truncated: " + std::to_string(s.data_bytes_found) + " of " +
               std::to_string(s.data_bytes_expected) + " data bytes present";
      if (!s.problem.empty()) return s.problem;
    }
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace spineparse::io
