#include "io/voxel_data.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "io/gzip_file.hpp"
#include "io/header.hpp"
#include "io/nifti_types.hpp"

namespace spineparse::io {

namespace {
// Counts non-finite floats among the whole elements of buf[0, n); returns the bytes left over.
std::size_t count_non_finite(const unsigned char* buf, std::size_t n, int datatype, bool swap,
                             std::int64_t& non_finite) {
  const std::size_t elem = datatype == 16 ? 4 : datatype == 64 ? 8 : 1;
  const std::size_t whole = n - n % elem;
  if (datatype == 16) {
    for (std::size_t i = 0; i < whole; i += 4)
      non_finite += !std::isfinite(read_as<float>(buf + i, swap));
  } else if (datatype == 64) {
    for (std::size_t i = 0; i < whole; i += 8)
      non_finite += !std::isfinite(read_as<double>(buf + i, swap));
  }
  return n - whole;
}
}  // namespace

namespace {

// Where the data bytes come from: the whole file as gzip or plain bytes (NIfTI: .nii.gz, or a
// plain .nii read transparently; GzipFile), a plain file at an offset, or a zlib/gzip stream at an
// offset (NRRD "encoding: gzip", MetaImage "CompressedData = True"; zlib).
class DataSource {
 public:
  explicit DataSource(const HeaderFacts& h) : h_(h) {}
  ~DataSource() {
    if (file_) std::fclose(file_);
    if (z_open_) inflateEnd(&z_);
  }
  // Opens and positions at the data; "" or why not.
  std::string open() {
    if (h_.whole_file_gzip || h_.format == "nifti1" || h_.format == "nifti2") {
      whole_ = true;
      if (std::string why = gz_.open(h_.data_file); !why.empty()) return why;
      if (h_.data_offset > 0 && !gz_.skip(h_.data_offset))
        return !gz_.problem().empty() ? gz_.problem()
                                      : "data starts past the end of the file (offset " +
                                            std::to_string(h_.data_offset) + ")";
      return "";
    }
    file_ = std::fopen(h_.data_file.c_str(), "rb");
    if (!file_) return "cannot open " + h_.data_file;
    std::int64_t offset = h_.data_offset;
    if (offset < 0) {  // -1: the data is the end of the file
      std::fseek(file_, 0, SEEK_END);
      offset = std::max<std::int64_t>(0, std::ftell(file_) - h_.data_bytes);
    }
    if (std::fseek(file_, offset, SEEK_SET) != 0) return "cannot seek to the data";
    if (h_.encoding == Encoding::kGzip || h_.encoding == Encoding::kZlib) {
      if (inflateInit2(&z_, 15 + 32) != Z_OK) return "zlib init failed";
      z_open_ = true;
      in_.resize(1 << 16);
    }
    return "";
  }
  // Up to n bytes; 0 at the end of the data stream; -1 on an error (problem() says which).
  long read(unsigned char* out, std::size_t n) {
    if (whole_) {
      const long got = gz_.read(out, n);
      if (got <= 0) problem_ = gz_.problem();
      return got;
    }
    if (!z_open_) return static_cast<long>(std::fread(out, 1, n, file_));
    if (z_end_) return 0;
    z_.next_out = out;
    z_.avail_out = static_cast<uInt>(n);
    while (z_.avail_out > 0 && !z_end_) {
      if (z_.avail_in == 0) {
        z_.avail_in = static_cast<uInt>(std::fread(in_.data(), 1, in_.size(), file_));
        z_.next_in = in_.data();
        if (z_.avail_in == 0) {
          problem_ = "compressed stream ends early";
          break;
        }
      }
      const int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) z_end_ = true;
      if (rc != Z_OK && rc != Z_STREAM_END) {
        problem_ = z_.msg ? z_.msg : "compressed data is corrupt";
        return -1;
      }
    }
    return static_cast<long>(n - z_.avail_out);
  }
  // After the data: reads compressed streams to their end, so that a damaged trailer (CRC,
  // length) is found too. Returns the problem found, if any.
  std::string finish() {
    if (!problem_.empty()) return problem_;
    if (whole_) {
      std::vector<unsigned char> sink(1 << 16);
      while (gz_.read(sink.data(), sink.size()) > 0) {
      }
      return gz_.problem();
    }
    if (z_open_ && !z_end_) {
      std::vector<unsigned char> sink(1 << 16);
      while (read(sink.data(), sink.size()) > 0) {
      }
      if (!z_end_ && problem_.empty()) problem_ = "compressed stream ends early";
    }
    return problem_;
  }
  const std::string& problem() const { return problem_; }

 private:
  const HeaderFacts& h_;
  bool whole_ = false;  // the whole file, gzip or plain
  GzipFile gz_;
  FILE* file_ = nullptr;
  z_stream z_{};
  bool z_open_ = false, z_end_ = false;
  std::vector<unsigned char> in_;
  std::string problem_;
};

}  // namespace

NiftiScan scan_nifti(const std::string& path, const HeaderFacts& h,
                     std::vector<unsigned char>* keep) {
  (void)path;
  NiftiScan s;
  s.is_nifti = h.format == "nifti1" || h.format == "nifti2";
  s.data_bytes_expected = h.data_bytes;
  DataSource src(h);
  s.problem = src.open();
  if (!s.problem.empty()) return s;
  if (keep) keep->reserve(keep->size() + static_cast<std::size_t>(h.data_bytes));
  std::vector<unsigned char> buf(1 << 20);
  std::int64_t found = 0;
  std::size_t carry = 0;  // bytes of a partial element carried between reads
  while (found < h.data_bytes) {
    const auto want =
        std::min<std::int64_t>(static_cast<std::int64_t>(buf.size() - carry), h.data_bytes - found);
    const long n = src.read(buf.data() + carry, static_cast<std::size_t>(want));
    if (n <= 0) break;
    if (keep) keep->insert(keep->end(), buf.data() + carry, buf.data() + carry + n);
    found += n;
    const std::size_t avail = carry + static_cast<std::size_t>(n);
    carry = count_non_finite(buf.data(), avail, h.datatype, h.swap, s.non_finite);
    if (carry) std::memmove(buf.data(), buf.data() + avail - carry, carry);
  }
  s.data_bytes_found = found;
  s.problem = found < h.data_bytes ? src.problem() : src.finish();
  return s;
}

NiftiScan scan_nifti(const std::string& path, std::vector<unsigned char>* keep) {
  NiftiScan s;
  try {
    const HeaderFacts h = check_volume_file(path, ReadLimits{0, 0});
    if (!h.binary) return s;
    return scan_nifti(path, h, keep);
  } catch (const std::exception& e) {
    s.problem = e.what();
    return s;
  }
}

namespace {

// File order (x = H fastest, then W, then slices) -> C-order [D, H, W]: each output row (z, x)
// read down column x of the file's slice z, load(file index), and written along the row,
// put(index, value). A column touches one cache line per y, and the next values of x read the
// same lines from the cache: 2.5x faster here than 32 x 32 tiles.
template <typename Load, typename Put>
void by_columns(std::int64_t H, std::int64_t W, std::int64_t D, const Load& load, Put& put) {
  for (std::int64_t z = 0; z < D; ++z)
    for (std::int64_t x = 0; x < H; ++x) {
      const std::int64_t at = (z * H + x) * W, from = z * W * H + x;
      for (std::int64_t y = 0; y < W; ++y) put(at + y, load(from + y * H));
    }
}

// NIfTI voxels -> [D, H, W] floats: put(index, value) for each, the value read by memcpy (the
// bytes carry no type), its bytes swapped when kSwap and the header's intensity scaling applied
// when kScale.
template <typename T, bool kSwap, bool kScale, typename Put>
void decode_columns(const unsigned char* src, const HeaderFacts& h, std::int64_t H,
                    std::int64_t W, std::int64_t D, Put& put) {
  const double slope = h.scl_slope, inter = h.scl_inter;
  by_columns(
      H, W, D,
      [&](std::int64_t i) {
        const T v = read_as<T>(src + i * sizeof(T), kSwap);
        return kScale ? static_cast<float>(static_cast<double>(v) * slope + inter)
                      : static_cast<float>(v);
      },
      put);
}

// Whether the header's intensity scaling changes the values (scl_slope 0: none).
bool scaled(const HeaderFacts& h) {
  return h.scl_slope != 0 && !(h.scl_slope == 1 && h.scl_inter == 0);
}

// Unscaled uint8 voxels are their bytes: to [D, H, W] in `out`. Returns the largest.
std::uint8_t transpose_bytes(const unsigned char* src, std::int64_t H, std::int64_t W,
                             std::int64_t D, std::uint8_t* out) {
  auto put = [out](std::int64_t i, std::uint8_t v) { out[i] = v; };
  by_columns(
      H, W, D, [src](std::int64_t i) { return src[i]; }, put);
  return H * W * D > 0 ? *std::max_element(src, src + H * W * D) : 0;
}

template <typename T, typename Put>
void decode_to_dhw(const unsigned char* src, const HeaderFacts& h, std::int64_t H, std::int64_t W,
                   std::int64_t D, Put&& put) {
  const bool scale = scaled(h);
  if (h.swap && scale)
    decode_columns<T, true, true>(src, h, H, W, D, put);
  else if (h.swap)
    decode_columns<T, true, false>(src, h, H, W, D, put);
  else if (scale)
    decode_columns<T, false, true>(src, h, H, W, D, put);
  else
    decode_columns<T, false, false>(src, h, H, W, D, put);
}

template <typename Put>
void decode_nifti(const HeaderFacts& h, const unsigned char* p, std::int64_t H, std::int64_t W,
                  std::int64_t D, Put&& put) {
  const bool known = visit_nifti_type(
      h.datatype, [&](auto t) { decode_to_dhw<typename decltype(t)::type>(p, h, H, W, D, put); });
  if (!known) throw std::logic_error("decode_nifti: datatype not checked");
}

// The data bytes of a checked file, read once; throws naming the file when they are truncated,
// corrupt or hold NaN/infinity. dims: H, W, D.
std::vector<unsigned char> checked_bytes(const std::string& path, const HeaderFacts& h,
                                         std::int64_t dims[3]) {
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
  dims[0] = dims[1] = dims[2] = 1;
  for (std::size_t i = 0; i < h.size.size(); ++i) dims[std::min<std::size_t>(i, 2)] *= h.size[i];
  return bytes;
}

// The checked bytes as float [D, H, W]; n: H, W, D.
NdArrayPtr decode_float(const HeaderFacts& h, const std::vector<unsigned char>& bytes,
                        const std::int64_t n[3]) {
  auto arr = NdArray::make<float>({n[2], n[0], n[1]});
  float* out = arr->data<float>();
  decode_nifti(h, bytes.data(), n[0], n[1], n[2], [out](std::int64_t i, float v) { out[i] = v; });
  return arr;
}

}  // namespace

NdArrayPtr read_voxels(const std::string& path, const HeaderFacts& h) {
  std::int64_t n[3];
  const std::vector<unsigned char> bytes = checked_bytes(path, h, n);
  return decode_float(h, bytes, n);
}

NdArrayPtr read_label_voxels(const std::string& path, const HeaderFacts& h, int max_label) {
  if (max_label < 0 || max_label > 255) throw std::invalid_argument("max_label outside 0..255");
  std::int64_t n[3];
  const std::vector<unsigned char> bytes = checked_bytes(path, h, n);
  auto arr = NdArray::make<std::uint8_t>({n[2], n[0], n[1]});
  std::uint8_t* out = arr->data<std::uint8_t>();
  if (h.datatype == 2 && !scaled(h)) {  // uint8, the usual mask: the bytes are the labels
    const bool labels = transpose_bytes(bytes.data(), n[0], n[1], n[2], out) <= max_label;
    return labels ? arr : decode_float(h, bytes, n);
  }
  const float top = static_cast<float>(max_label);
  bool bad = false;
  decode_nifti(h, bytes.data(), n[0], n[1], n[2], [&](std::int64_t i, float v) {
    const float c = v >= 0.0f ? (v <= top ? v : top) : 0.0f;  // NaN: 0, and bad below
    const int whole = static_cast<int>(c);
    bad |= static_cast<float>(whole) != v;
    out[i] = static_cast<std::uint8_t>(whole);
  });
  return bad ? decode_float(h, bytes, n) : arr;  // the same bytes, not read again
}

std::string volume_problem(const std::string& path) {
  try {
    const HeaderFacts h = check_volume_file(path, ReadLimits{0, 0});
    if (h.binary) {
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
