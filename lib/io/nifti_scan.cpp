#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

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
}  // namespace

NiftiScan scan_nifti(const std::string& path, std::vector<unsigned char>* keep) {
  NiftiScan s;
  gzFile f = gzopen(path.c_str(), "rb");  // also reads uncompressed files transparently
  if (!f) {
    s.problem = "cannot open";
    return s;
  }
  gzbuffer(f, 1 << 17);
  unsigned char hdr[540];
  const int got = gzread(f, hdr, 348);
  if (got < 348) {
    gzclose(f);
    s.problem = "shorter than a NIfTI header";
    return s;
  }
  const std::int32_t size_le = get<std::int32_t>(hdr, false);
  const bool swap = size_le != 348 && size_le != 540;
  const std::int32_t sizeof_hdr = get<std::int32_t>(hdr, swap);
  std::int64_t voxels = 1, vox_offset = 0;
  int datatype = 0, bitpix = 0;
  double slope = 0, inter = 0;
  if (sizeof_hdr == 348) {
    if (std::memcmp(hdr + 344, "n+1", 3) != 0 && std::memcmp(hdr + 344, "ni1", 3) != 0) {
      gzclose(f);
      return s;  // Analyze or not NIfTI: nothing to say
    }
    const int ndim = get<std::int16_t>(hdr + 40, swap);
    for (int i = 1; i <= std::min(ndim, 7); ++i)
      voxels *= std::max<std::int16_t>(1, get<std::int16_t>(hdr + 40 + 2 * i, swap));
    datatype = get<std::int16_t>(hdr + 70, swap);
    bitpix = get<std::int16_t>(hdr + 72, swap);
    vox_offset = static_cast<std::int64_t>(get<float>(hdr + 108, swap));
    slope = get<float>(hdr + 112, swap);
    inter = get<float>(hdr + 116, swap);
    if (std::memcmp(hdr + 344, "ni1", 3) == 0) {
      gzclose(f);
      return s;  // header/image pair: the data is in another file
    }
  } else if (sizeof_hdr == 540) {
    if (gzread(f, hdr + 348, 540 - 348) < 540 - 348) {
      gzclose(f);
      s.problem = "shorter than a NIfTI-2 header";
      return s;
    }
    datatype = get<std::int16_t>(hdr + 12, swap);
    bitpix = get<std::int16_t>(hdr + 14, swap);
    const std::int64_t ndim = get<std::int64_t>(hdr + 16, swap);
    for (int i = 1; i <= std::min<std::int64_t>(ndim, 7); ++i)
      voxels *= std::max<std::int64_t>(1, get<std::int64_t>(hdr + 16 + 8 * i, swap));
    vox_offset = get<std::int64_t>(hdr + 168, swap);
    slope = get<double>(hdr + 176, swap);
    inter = get<double>(hdr + 184, swap);
  } else {
    gzclose(f);
    return s;
  }
  s.is_nifti = true;
  s.data_bytes_expected = voxels * bitpix / 8;
  s.datatype = datatype;
  s.swap = swap;
  s.voxels = voxels;
  // uint8, int16, int32, float32, float64, int8, uint16, uint32, with the matching bitpix.
  static const int kPlain[][2] = {{2, 8},   {4, 16},  {8, 32},   {16, 32},
                                  {64, 64}, {256, 8}, {512, 16}, {768, 32}};
  for (const auto& t : kPlain) s.plain = s.plain || (t[0] == datatype && t[1] == bitpix);
  s.plain = s.plain && (slope == 0 || slope == 1) && inter == 0 &&
            vox_offset >= sizeof_hdr + 4;  // + the extension flag
  if (keep && s.plain)
    keep->reserve(keep->size() + static_cast<std::size_t>(s.data_bytes_expected));
  // Skip to the data.
  std::vector<unsigned char> buf(1 << 20);
  std::int64_t pos = sizeof_hdr;
  while (pos < vox_offset) {
    const int n = gzread(
        f, buf.data(), static_cast<unsigned>(std::min<std::int64_t>(vox_offset - pos, buf.size())));
    if (n <= 0) break;
    pos += n;
  }
  const bool is_f32 = datatype == 16, is_f64 = datatype == 64;
  std::int64_t found = 0;
  std::size_t carry = 0;  // bytes of a partial element carried between reads
  while (found < s.data_bytes_expected) {
    const int n = gzread(f, buf.data() + carry, static_cast<unsigned>(buf.size() - carry));
    if (n <= 0) break;
    if (keep && s.plain) {
      const std::int64_t take =
          std::min<std::int64_t>(n, s.data_bytes_expected - found);  // not the bytes after the data
      keep->insert(keep->end(), buf.data() + carry, buf.data() + carry + take);
    }
    found += n;
    const std::size_t avail = carry + static_cast<std::size_t>(n);
    const std::size_t elem = is_f32 ? 4 : is_f64 ? 8 : 1;
    const std::size_t whole = avail - avail % elem;
    if (is_f32) {
      for (std::size_t i = 0; i < whole; i += 4)
        s.non_finite += !std::isfinite(get<float>(buf.data() + i, swap));
    } else if (is_f64) {
      for (std::size_t i = 0; i < whole; i += 8)
        s.non_finite += !std::isfinite(get<double>(buf.data() + i, swap));
    }
    carry = avail - whole;
    if (carry) std::memmove(buf.data(), buf.data() + whole, carry);
  }
  s.data_bytes_found = std::min(found, s.data_bytes_expected);
  int err = 0;
  const char* msg = gzerror(f, &err);
  if (err != Z_OK && err != Z_BUF_ERROR) s.problem = msg ? msg : "compressed stream error";
  if (err == Z_BUF_ERROR && found < s.data_bytes_expected)
    s.problem = "compressed stream ends early";
  gzclose(f);
  return s;
}

}  // namespace spineparse::io
