// Voxel data read without ITK, for every binary format (ITK 5.2 reads truncated NIfTI files
// without complaint, turns NaN into numbers, cannot read NIfTI-2, and returns an unfilled buffer
// for some compressed MetaImage files): one pass over the data that checks it and keeps it, then
// decoding to float [D, H, W].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/header.hpp"
#include "spineparse/ndarray.hpp"

namespace spineparse::io {

// What a file's data really holds (every format whose HeaderFacts::binary is set).
struct NiftiScan {
  bool is_nifti = false;
  std::int64_t data_bytes_expected = 0;
  std::int64_t data_bytes_found = 0;
  std::int64_t non_finite = 0;  // float32/float64 data only
  std::string problem;          // header or stream error, empty if none
};
// Reads a checked file's data once: counts the data bytes (truncation) and non-finite floats,
// and reads compressed streams to their end (CRC). With `keep`, the data bytes are appended to
// it as well (read_voxels decodes them).
NiftiScan scan_nifti(const std::string& path, const HeaderFacts& header,
                     std::vector<unsigned char>* keep);
// The same, checking the header first (no limits); for tests.
NiftiScan scan_nifti(const std::string& path, std::vector<unsigned char>* keep = nullptr);

// The voxels of a checked file with binary data as float32 [D, H, W] (file axes x, y, z = H, W,
// D; NIfTI intensity scaling applied). Throws std::runtime_error naming the file when the data is
// truncated, corrupt or holds NaN/infinity.
NdArrayPtr read_voxels(const std::string& path, const HeaderFacts& header);
// The same as labels, uint8 [D, H, W], when every voxel's value (as read_voxels reads it) is a
// whole number in 0..max_label (at most 255); else read_voxels' float array (read_labels names
// the voxel that is not a label).
NdArrayPtr read_label_voxels(const std::string& path, const HeaderFacts& header, int max_label);

// Why the file is not a complete, readable volume (bad header, missing or damaged data, NaN in a
// NIfTI), or "" when it is. Reads the data once; allocates nothing of its size.
std::string volume_problem(const std::string& path);

}  // namespace spineparse::io
