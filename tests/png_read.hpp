// Reads 8-bit RGB or RGBA PNG files (what headless Chromium's screenshots are) into RGB pixels,
// for the browser tests' pixel checks. Not interlaced; throws on anything else.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace spineparse::testing {

struct Rgb {
  int w = 0, h = 0;
  std::vector<unsigned char> px;  // row-major, 3 bytes per pixel
  const unsigned char* at(int x, int y) const { return &px[(static_cast<std::size_t>(y) * w + x) * 3]; }
};

inline Rgb read_png(const std::string& bytes) {
  auto u32 = [&](std::size_t p) {
    return (std::uint32_t(std::uint8_t(bytes.at(p))) << 24) | (std::uint32_t(std::uint8_t(bytes.at(p + 1))) << 16) |
           (std::uint32_t(std::uint8_t(bytes.at(p + 2))) << 8) | std::uint32_t(std::uint8_t(bytes.at(p + 3)));
  };
  if (bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) throw std::runtime_error("not a PNG");
  Rgb out;
  int channels = 0;
  std::string idat;
  for (std::size_t p = 8; p + 8 <= bytes.size();) {
    const std::uint32_t n = u32(p);
    const std::string type = bytes.substr(p + 4, 4);
    if (type == "IHDR") {
      out.w = static_cast<int>(u32(p + 8));
      out.h = static_cast<int>(u32(p + 12));
      const int depth = bytes[p + 16], colour = bytes[p + 17], interlace = bytes[p + 20];
      if (depth != 8 || (colour != 2 && colour != 6) || interlace != 0)
        throw std::runtime_error("PNG: only 8-bit RGB/RGBA, not interlaced");
      channels = colour == 2 ? 3 : 4;
    } else if (type == "IDAT") {
      idat += bytes.substr(p + 8, n);
    }
    p += 12 + n;
  }
  const std::size_t stride = static_cast<std::size_t>(out.w) * channels;
  std::vector<unsigned char> raw((stride + 1) * out.h);
  uLongf size = static_cast<uLongf>(raw.size());
  if (uncompress(raw.data(), &size, reinterpret_cast<const Bytef*>(idat.data()),
                 static_cast<uLong>(idat.size())) != Z_OK || size != raw.size())
    throw std::runtime_error("PNG: bad image data");
  std::vector<unsigned char> cur(stride), prev(stride, 0);
  out.px.resize(static_cast<std::size_t>(out.w) * out.h * 3);
  for (int y = 0; y < out.h; ++y) {
    const unsigned char* r = &raw[y * (stride + 1)];
    const int filter = r[0];
    for (std::size_t i = 0; i < stride; ++i) {
      const int a = i >= std::size_t(channels) ? cur[i - channels] : 0, b = prev[i],
                c = i >= std::size_t(channels) ? prev[i - channels] : 0;
      int v = r[1 + i];
      switch (filter) {
        case 1: v += a; break;
        case 2: v += b; break;
        case 3: v += (a + b) / 2; break;
        case 4: {
          const int pp = a + b - c, pa = std::abs(pp - a), pb = std::abs(pp - b), pc = std::abs(pp - c);
          v += (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default: break;
      }
      cur[i] = static_cast<unsigned char>(v);
    }
    for (int x = 0; x < out.w; ++x)
      for (int k = 0; k < 3; ++k)
        out.px[(static_cast<std::size_t>(y) * out.w + x) * 3 + k] = cur[x * channels + k];
    std::swap(cur, prev);
  }
  return out;
}

}  // namespace spineparse::testing
