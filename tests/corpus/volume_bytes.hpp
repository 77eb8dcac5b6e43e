// Volume files built byte by byte (NIfTI-1, NIfTI-2, NRRD, MetaImage), so that tests can write
// any header field, valid or not, without going through the code under test or ITK.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace spineparse::testing {

// Header bytes with typed, optionally byte-swapped, field setters.
struct Bytes {
  std::vector<unsigned char> b;
  bool big_endian = false;
  template <typename T>
  void set(std::size_t at, T v) {
    if (b.size() < at + sizeof(T)) b.resize(at + sizeof(T), 0);
    std::memcpy(&b[at], &v, sizeof(T));
    if (big_endian) std::reverse(b.begin() + at, b.begin() + at + sizeof(T));
  }
  void text(std::size_t at, const char* s, std::size_t n) {
    if (b.size() < at + n) b.resize(at + n, 0);
    std::memcpy(&b[at], s, n);
  }
  std::string str() const { return std::string(b.begin(), b.end()); }
};

// Voxel v(x, y, z) = x + 2 y + 3 z + 1 in x-fastest order, as float32 or int16 bytes.
inline std::string voxel_bytes(int H, int W, int D, bool as_float, bool big_endian = false) {
  Bytes out;
  out.big_endian = big_endian;
  std::size_t at = 0;
  for (int z = 0; z < D; ++z)
    for (int y = 0; y < W; ++y)
      for (int x = 0; x < H; ++x) {
        const int v = x + 2 * y + 3 * z + 1;
        if (as_float) {
          out.set<float>(at, static_cast<float>(v));
          at += 4;
        } else {
          out.set<std::int16_t>(at, static_cast<std::int16_t>(v));
          at += 2;
        }
      }
  return out.str();
}

// A valid NIfTI-1 header for an H x W x D float32 (or int16) volume: spacing 0.5 x 0.75 x 4 mm,
// qform (code 1, identity rotation, offset (-10, 20, 5)) and the matching sform (code 1).
inline Bytes nifti1_header(int H, int W, int D, bool as_float = true, bool big_endian = false) {
  Bytes h;
  h.big_endian = big_endian;
  h.b.assign(352, 0);
  h.set<std::int32_t>(0, 348);
  const std::int16_t dim[8] = {3,
                               static_cast<std::int16_t>(H),
                               static_cast<std::int16_t>(W),
                               static_cast<std::int16_t>(D),
                               1,
                               1,
                               1,
                               1};
  for (int i = 0; i < 8; ++i) h.set<std::int16_t>(40 + 2 * i, dim[i]);
  h.set<std::int16_t>(70, as_float ? 16 : 4);
  h.set<std::int16_t>(72, as_float ? 32 : 16);
  const float pixdim[8] = {1, 0.5f, 0.75f, 4.0f, 1, 1, 1, 1};
  for (int i = 0; i < 8; ++i) h.set<float>(76 + 4 * i, pixdim[i]);
  h.set<float>(108, 352);
  h.set<float>(112, 1);
  h.set<std::int16_t>(252, 1);
  h.set<std::int16_t>(254, 1);
  const float off[3] = {-10, 20, 5};
  for (int i = 0; i < 3; ++i) {
    h.set<float>(268 + 4 * i, off[i]);
    for (int j = 0; j < 4; ++j)
      h.set<float>(280 + 16 * i + 4 * j, j == 3 ? off[i] : (i == j ? pixdim[i + 1] : 0.0f));
  }
  h.text(344, "n+1\0", 4);
  return h;
}

// The same volume as NIfTI-2 (540-byte header, 8-byte fields).
inline Bytes nifti2_header(int H, int W, int D, bool as_float = true, bool big_endian = false) {
  Bytes h;
  h.big_endian = big_endian;
  h.b.assign(544, 0);
  h.set<std::int32_t>(0, 540);
  h.text(4, "n+2\0\r\n\032\n", 8);
  h.set<std::int16_t>(12, as_float ? 16 : 4);
  h.set<std::int16_t>(14, as_float ? 32 : 16);
  const std::int64_t dim[8] = {3, H, W, D, 1, 1, 1, 1};
  for (int i = 0; i < 8; ++i) h.set<std::int64_t>(16 + 8 * i, dim[i]);
  const double pixdim[8] = {1, 0.5, 0.75, 4.0, 1, 1, 1, 1};
  for (int i = 0; i < 8; ++i) h.set<double>(104 + 8 * i, pixdim[i]);
  h.set<std::int64_t>(168, 544);
  h.set<double>(176, 1);
  h.set<std::int32_t>(344, 1);
  h.set<std::int32_t>(348, 1);
  const double off[3] = {-10, 20, 5};
  for (int i = 0; i < 3; ++i) {
    h.set<double>(376 + 8 * i, off[i]);
    for (int j = 0; j < 4; ++j)
      h.set<double>(400 + 32 * i + 8 * j, j == 3 ? off[i] : (i == j ? pixdim[i + 1] : 0.0));
  }
  return h;
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

inline std::string gzip(const std::string& bytes) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("deflateInit2");
  std::string out(deflateBound(&z, bytes.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

inline std::string zlib_compress(const std::string& bytes) {
  uLongf n = compressBound(static_cast<uLong>(bytes.size()));
  std::string out(n, '\0');
  compress(reinterpret_cast<Bytef*>(out.data()), &n, reinterpret_cast<const Bytef*>(bytes.data()),
           static_cast<uLong>(bytes.size()));
  out.resize(n);
  return out;
}

}  // namespace spineparse::testing
