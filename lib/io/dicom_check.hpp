// One DICOM file checked before any decoder sees it: what GDCM or ITK would assert on, misread
// or silently replace with a default (unsupported BitsAllocated, pixel data shorter or longer than
// Rows x Columns promise, non-finite or non-orthonormal ImageOrientationPatient, zero
// PixelSpacing) is refused here with the file's name and the reason. GDCM only (no ITK), so the
// fuzz target drives exactly this code.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <vector>

namespace spineparse::io {

struct DicomFileFacts {
  int rows = 0, columns = 0, bits_allocated = 0, bits_stored = 0, pixel_representation = 0;
  bool has_orientation = false, has_position = false, has_pixel_spacing = false;
  std::array<double, 6> orientation{};  // row direction, then column direction (LPS)
  std::array<double, 3> position{};
  std::array<double, 2> pixel_spacing{};  // between rows, between columns (mm)
  bool encapsulated = false;              // compressed pixel data (its length is the codec's)
  std::vector<std::string> warnings;      // valid but unusual: recorded on the case
};

// A multi-valued decimal string ("a\b\c", DICOM's DS) as exactly n finite numbers into `out`;
// false otherwise.
bool finite_numbers(const std::string& s, std::size_t n, double* out);

// Reads and checks `path`. Throws std::runtime_error naming the file and the reason.
DicomFileFacts check_dicom_file(const std::string& path);

// The same on bytes in memory (`name` is used in messages).
DicomFileFacts check_dicom_bytes(const char* data, std::size_t size, const std::string& name);

// The check of `path` in the helper process spineparse-dicom-check (beside the running
// executable, or SPINEPARSE_DICOM_CHECK): Debian's GDCM asserts (aborts the process) on some
// damaged headers, and a file must never take a run down. A helper that dies, or runs over 30 s,
// is a refusal naming the file. Without the helper, the check runs in this process. Readers call
// this. (Not fork(): ITK's thread pool joins its threads in a fork handler and hangs.)
DicomFileFacts check_dicom_file_isolated(const std::string& path);

// The facts as the helper prints them, and back.
std::string serialise(const DicomFileFacts& f);
DicomFileFacts deserialise(const std::string& text, const std::string& name);

}  // namespace spineparse::io
