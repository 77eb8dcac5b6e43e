// check_volume_file: the file-level checks around the header parsers (what the path is, which
// format, whether the data the header promises is there), all before any voxel is allocated.
#include <sys/stat.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include "io/ascii.hpp"
#include "io/header.hpp"
#include "io/volume_formats.hpp"

namespace spineparse::io {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxTextHeader = 1 << 20;

[[noreturn]] void refuse(const std::string& name, const std::string& why) {
  throw std::runtime_error(name + ": " + why);
}

// Refuses anything that is not a readable regular file, saying what it is instead.
std::int64_t regular_file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    struct stat lst {};
    if (err == ELOOP) refuse(path, "symbolic link loop");
    if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode))
      refuse(path, "dangling symbolic link (its target does not exist)");
    refuse(path, std::strerror(err));
  }
  if (S_ISDIR(st.st_mode)) refuse(path, "is a directory, not a volume file");
  if (!S_ISREG(st.st_mode)) refuse(path, "is not a regular file (a FIFO, socket or device)");
  return static_cast<std::int64_t>(st.st_size);
}

// The first bytes of the file after gzip decompression (when it is gzip), and whether it was.
std::string leading_bytes(const std::string& path, std::size_t n, bool& gzipped) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) refuse(path, std::string("cannot open: ") + std::strerror(errno));
  std::string buf(n, '\0');
  const int got = gzread(f, buf.data(), static_cast<unsigned>(n));
  gzipped = !gzdirect(f);
  int err = Z_OK;
  const char* msg = got < 0 ? gzerror(f, &err) : nullptr;
  std::string why = msg ? msg : "";
  if (why.compare(0, path.size() + 2, path + ": ") == 0) why = why.substr(path.size() + 2);
  gzclose(f);
  if (got < 0) refuse(path, "compressed data is corrupt (" + why + ")");
  buf.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
  return buf;
}

// The raw text header of a NRRD or MetaImage file: up to the blank line (NRRD) or through the
// ElementDataFile line (MetaImage). `length` is where the data starts.
std::string text_header(const std::string& path, bool nrrd, std::size_t& length) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) refuse(path, std::string("cannot open: ") + std::strerror(errno));
  std::string text, line;
  int c;
  while (text.size() < kMaxTextHeader && (c = std::fgetc(f.get())) != EOF) {
    text.push_back(static_cast<char>(c));
    if (c != '\n') {
      line.push_back(static_cast<char>(c));
      continue;
    }
    while (!line.empty() && line.back() == '\r') line.pop_back();
    if (nrrd && line.empty()) break;
    if (!nrrd && line.compare(0, 15, "ElementDataFile") == 0) break;
    line.clear();
  }
  if (text.size() >= kMaxTextHeader) refuse(path, "the text header is longer than 1 MiB");
  length = text.size();
  return text;
}

// Decompressed bytes available from `offset` on (zlib or gzip, detected), counted in fixed-size
// chunks and stopping at `want`; `problem` says why the stream ended early.
std::int64_t inflated_bytes(const std::string& path, std::int64_t offset, std::int64_t want,
                            std::string& problem) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f || std::fseek(f.get(), offset, SEEK_SET) != 0) {
    problem = "cannot read the data";
    return 0;
  }
  z_stream z{};
  if (inflateInit2(&z, 15 + 32) != Z_OK) {
    problem = "zlib init failed";
    return 0;
  }
  std::vector<unsigned char> in(1 << 16), out(1 << 18);
  std::int64_t total = 0;
  int rc = Z_OK;
  while (total < want && rc != Z_STREAM_END) {
    if (z.avail_in == 0) {
      z.avail_in = static_cast<uInt>(std::fread(in.data(), 1, in.size(), f.get()));
      z.next_in = in.data();
      if (z.avail_in == 0) break;
    }
    z.next_out = out.data();
    z.avail_out = static_cast<uInt>(out.size());
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      problem = z.msg ? z.msg : "compressed data is corrupt";
      break;
    }
    total += static_cast<std::int64_t>(out.size() - z.avail_out);
  }
  inflateEnd(&z);
  if (problem.empty() && total < want) problem = "compressed data ends early";
  return total;
}

void apply_limits(const HeaderFacts& h, const ReadLimits& limits, const std::string& path) {
  std::string dims;
  for (std::size_t i = 0; i < h.size.size(); ++i)
    dims += (i ? "x" : "") + std::to_string(h.size[i]);
  if (limits.max_voxels > 0 && h.voxels > limits.max_voxels)
    refuse(path, "the header claims " + std::to_string(h.voxels) + " voxels (" + dims +
                     "), over the limit max_voxels=" + std::to_string(limits.max_voxels));
  if (limits.max_slices > 0 && h.size.size() >= 3) {
    // The slices run along the axis with the largest spacing (k when spacings tie), whichever
    // file axis holds it: a sagittal series stored RAS has them along i.
    std::size_t a = 2;
    for (std::size_t i : {1u, 0u})
      if (h.geometry.spacing[i] > h.geometry.spacing[a]) a = i;
    if (h.size[a] > limits.max_slices)
      refuse(path, "the header claims " + std::to_string(h.size[a]) + " slices (file axis " +
                       "ijk"[a] + ", the largest spacing), over the limit max_slices=" +
                       std::to_string(limits.max_slices));
  }
}

// Whether the data file holds the bytes the header promises (raw: by size; compressed data ITK
// reads: by inflating). Compressed data our own reader decodes (whole-file gzip NIfTI, gzip NRRD,
// zlib MetaImage) is checked by that single decompression pass (scan_nifti) instead, so it is
// not inflated twice; it allocates at most data_bytes, already bounded by the limits.
void check_data_present(const HeaderFacts& h, const std::string& path) {
  if (h.whole_file_gzip) return;
  const std::int64_t size = regular_file_size(h.data_file);
  if (h.binary && h.encoding != Encoding::kRaw) return;
  const std::string where = h.data_file == path ? "" : " in " + h.data_file;
  if (h.encoding == Encoding::kRaw) {
    const std::int64_t available = h.data_offset < 0 ? size : size - h.data_offset;
    if (available < h.data_bytes)
      refuse(path, "is truncated: " + std::to_string(std::max<std::int64_t>(0, available)) +
                       " of " + std::to_string(h.data_bytes) + " data bytes present" + where);
  } else if (h.encoding == Encoding::kOther) {
    if (size - std::max<std::int64_t>(0, h.data_offset) < h.voxels)
      refuse(path, "is truncated: fewer text bytes" + where + " than the " +
                       std::to_string(h.voxels) + " voxels the header claims");
  } else {
    std::string problem;
    const std::int64_t got = inflated_bytes(h.data_file, std::max<std::int64_t>(0, h.data_offset),
                                            h.data_bytes, problem);
    if (got < h.data_bytes)
      refuse(path, "is truncated: " + std::to_string(got) + " of " + std::to_string(h.data_bytes) +
                       " data bytes present" + where + " (" + problem + ")");
  }
}

HeaderFacts check_text_format(const std::string& path, bool nrrd) {
  std::size_t length = 0;
  const std::string text = text_header(path, nrrd, length);
  const std::string dir = fs::path(path).parent_path().string();
  HeaderFacts h =
      nrrd ? parse_nrrd_header(text, path, dir) : parse_metaimage_header(text, path, dir);
  if (h.data_file.empty()) {  // attached: the data follows the header
    h.data_file = path;
    h.data_offset = h.data_offset < 0 ? -1 : static_cast<std::int64_t>(length) + h.data_offset;
  } else if (fs::weakly_canonical(h.data_file) == fs::weakly_canonical(path)) {
    refuse(path, "names itself as its detached data file");
  }
  return h;
}

}  // namespace

std::string file_problem(const std::string& path) {
  try {
    regular_file_size(path);
    return "";
  } catch (const std::exception& e) {
    return std::string(e.what()).substr(path.size() + 2);
  }
}

HeaderFacts check_volume_file(const std::string& path, const ReadLimits& limits) {
  const std::int64_t size = regular_file_size(path);
  if (size == 0) refuse(path, "is empty (0 bytes)");
  bool gzipped = false;
  const std::string lead = leading_bytes(path, 540, gzipped);
  HeaderFacts h;
  const VolumeExtension* named = volume_extension_of(path);
  const bool meta_name = named && named->format == VolumeFormat::kMetaImage;
  if (!gzipped && lead.compare(0, 4, "NRRD") == 0) {
    h = check_text_format(path, true);
  } else if (!gzipped && (meta_name || lead.compare(0, 10, "ObjectType") == 0 ||
                          lead.compare(0, 5, "NDims") == 0)) {
    h = check_text_format(path, false);
  } else if (lead.size() >= 4) {
    if (gzipped && lead.compare(0, 2, "\x1f\x8b") == 0)
      refuse(path, "is compressed twice (gzip inside gzip); decompress it once");
    if (gzipped && lead.size() < 348) refuse(path, "compressed data ends before the header does");
    h = parse_nifti_header(reinterpret_cast<const unsigned char*>(lead.data()), lead.size(), path);
    h.data_file = path;
    h.whole_file_gzip = gzipped;
    const bool hdr_name = ends_with(path, ".hdr") || ends_with(path, ".hdr.gz");
    if (h.pair != hdr_name)
      refuse(path, h.pair ? "its magic says the voxels are in a separate .img file, but it is "
                            "not a .hdr header"
                          : "a .hdr header must have the \"ni1\"/\"ni2\" magic");
    if (h.pair) {
      std::string img = path.substr(0, path.rfind(".hdr")) + ".img";
      if (!fs::exists(img) && fs::exists(img + ".gz")) img += ".gz";
      h.data_file = img;
      h.whole_file_gzip = ends_with(img, ".gz");
    }
  } else {
    refuse(path, "too short to be a volume file (" + std::to_string(size) + " bytes)");
  }
  apply_limits(h, limits, path);
  check_data_present(h, path);
  return h;
}

}  // namespace spineparse::io
