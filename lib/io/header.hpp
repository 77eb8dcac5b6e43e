// Volume headers parsed and checked before any voxel is allocated.
//
// Every field a file can lie in is checked here, without ITK: sizes (overflow-checked products,
// bounded by `max_voxels` and by the bytes the file actually holds), element types, data offsets,
// detached data files (which must lie in the header's own folder) and geometry (finite, non-zero
// spacing, finite and non-singular orientation). A file that fails is refused with a message
// naming it; a file that is valid but relies on a documented fall-back (a NIfTI with neither
// qform nor sform) is accepted with a warning. Only then does a reader allocate.
//
// Formats: NIfTI-1 and NIfTI-2 (.nii, .nii.gz, .hdr/.img pairs), NRRD (.nrrd, .nhdr with a
// detached file) and MetaImage (.mha, .mhd). The parsers work on bytes in memory, so the fuzz
// targets drive exactly the code that reads files.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "spineparse/case.hpp"

namespace spineparse::io {

struct ReadLimits {
  std::int64_t max_voxels = std::int64_t{1} << 31;  // refused above this, before allocation
  std::int64_t max_slices = 0;  // along the axis of largest spacing; 0: no limit
};

// How and where the voxels of a file are stored.
enum class Encoding { kRaw, kGzip, kZlib, kOther };

// The warning of a NIfTI file without qform and sform: its axes' directions are unknown (the
// orientation stage then uses the volume as stored).
inline constexpr const char* kNoOrientationWarning =
    "neither qform nor sform is set (both codes 0): orientation is not in the file, so the "
    "reader's default is used";

struct HeaderFacts {
  std::string format;                  // "nifti1", "nifti2", "analyze", "nrrd", "metaimage"
  std::vector<std::int64_t> size;      // file axes, fastest first (ITK order)
  std::int64_t voxels = 0;             // product of size, overflow-checked
  int element_bytes = 0;               // bytes per voxel
  std::int64_t data_bytes = 0;         // voxels * element_bytes
  std::string data_file;               // the file holding the voxels (the header's own or detached)
  std::int64_t data_offset = 0;        // where they start in it; -1: at the end (NRRD, MetaImage)
  Encoding encoding = Encoding::kRaw;  // of the data file from data_offset on
  bool whole_file_gzip = false;        // .nii.gz: the offset counts decompressed bytes
  std::vector<std::string> warnings;   // valid but unusual: recorded on the case
  // The element type as a NIfTI datatype code (2 uint8, 4 int16, 16 float32, ... for every
  // format), and whether its bytes are in the other order than this machine's.
  int datatype = 0;
  bool swap = false;
  // The voxels can be read without ITK: binary data at a known offset (not NRRD's ASCII/hex
  // encodings or its "line skip").
  bool binary = true;
  // NIfTI only.
  bool pair = false;  // "ni1"/"ni2" magic: a .hdr whose voxels are in the .img beside it
  double scl_slope = 0, scl_inter = 0;
  Geometry geometry;  // NIfTI: what the header says, converted to ITK's LPS convention
};

// The parsed header of one NIfTI file (first 348 or 540 bytes); `name` is used in messages.
// Throws std::runtime_error with the reason; checks everything a header alone can show.
HeaderFacts parse_nifti_header(const unsigned char* bytes, std::size_t n, const std::string& name);
// A NRRD or MetaImage header as text (up to the end of the header); `dir` is the header's folder
// (detached data files are resolved against it and must stay inside it).
HeaderFacts parse_nrrd_header(std::string_view text, const std::string& name,
                              const std::string& dir);
HeaderFacts parse_metaimage_header(std::string_view text, const std::string& name,
                                   const std::string& dir);

// Reads and checks the header of `path` (format by content), applies `limits`, and checks that
// the data file holds at least data_bytes: raw data by its size; compressed data ITK will read by
// inflating it in fixed-size chunks (nothing kept). Compressed data with `binary` set is left to
// the one pass that reads it (scan_nifti / read_voxels). Throws std::runtime_error naming the file.
HeaderFacts check_volume_file(const std::string& path, const ReadLimits& limits);

// Why `path` cannot be read as a volume file ("is a directory", "dangling symbolic link", ...),
// or "" for a readable regular file.
std::string file_problem(const std::string& path);

// Bytes per element of a scalar NIfTI datatype code, 0 for codes that are not read (complex, RGB).
int datatype_bytes(int datatype);

// A T stored at p (any alignment), its bytes reversed first when `swap` (the file's byte order is
// not this machine's).
template <typename T>
T read_as(const unsigned char* p, bool swap) {
  unsigned char b[sizeof(T)];
  std::memcpy(b, p, sizeof(T));
  if (swap) std::reverse(b, b + sizeof(T));
  T v;
  std::memcpy(&v, b, sizeof(T));
  return v;
}

// a * b, or -1 when it overflows or either is negative.
std::int64_t checked_mul(std::int64_t a, std::int64_t b);

}  // namespace spineparse::io
