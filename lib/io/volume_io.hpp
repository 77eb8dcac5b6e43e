// Reading and writing volumes through ITK, with the method's axis convention.
//
// Arrays follow spec 1.1: the file's array axes are (H, W, D) = ITK index axes (0, 1, 2), taken as
// they are (no reorientation). In memory a volume is C-order [D, H, W], the layout every later
// stage uses; geometry (spacing, origin, direction) is kept as ITK reports it and written back
// unchanged, so outputs overlay their input in ITK-SNAP or 3D Slicer.
#pragma once

#include <string>
#include <vector>

#include "spineparse/case.hpp"

namespace spineparse::io {

struct VolumeInfo {
  std::string path;
  int dimensions = 0;
  std::vector<std::int64_t> size;  // ITK order: x (H), y (W), z (D), ...
  int components = 1;
  std::string component_type;  // "short", "float", ...
  Geometry geometry;
};

// Reads the header only. Throws std::runtime_error naming the file on any problem.
VolumeInfo read_info(const std::string& path);

struct Volume {
  NdArrayPtr data;  // float32 [D, H, W] for images, uint8 for label maps
  Geometry geometry;
  VolumeInfo info;
};

// Reads a 3-D scalar volume (trailing axes of length 1 are dropped; anything else that is not
// 3-D is refused) as float32 [D,H,W].
Volume read_image(const std::string& path);
// Reads a label map as uint8 [D,H,W]; refuses values outside [0, max_label] or non-integers.
Volume read_labels(const std::string& path, int max_label);

// Writes a [D,H,W] array (uint8, int16 or float32) with the given geometry, atomically
// (temporary file in the same folder, then rename). The format follows the extension.
void write_volume(const std::string& path, const NdArray& data, const Geometry& geometry);

// File name without folder and without the volume extension: "a/Case1.nii.gz" -> "Case1".
std::string volume_stem(const std::string& path);
bool is_volume_file(const std::string& path);

}  // namespace spineparse::io

namespace spineparse::io {

// What a NIfTI file's data really holds, read with zlib independently of ITK: ITK 5.2 reads
// truncated .nii/.nii.gz files without complaint and turns NaN into numbers.
struct NiftiScan {
  bool is_nifti = false;
  std::int64_t data_bytes_expected = 0;
  std::int64_t data_bytes_found = 0;
  std::int64_t non_finite = 0;  // float32/float64 data only
  std::string problem;          // header or stream error, empty if none
  // Set when the voxels can be decoded without ITK: a single-file NIfTI-1/2 of a plain integer
  // or float datatype with no intensity scaling (scl_slope 0 or 1, scl_inter 0).
  int datatype = 0;
  bool swap = false;  // the file's byte order differs from this machine's
  bool plain = false;
  std::int64_t voxels = 0;
};
// Reads a NIfTI file once: checks the header, counts the data bytes (truncation) and non-finite
// floats. With `keep`, the data bytes are appended to it as well (read_image decodes them instead
// of decompressing the file a second time through ITK).
NiftiScan scan_nifti(const std::string& path, std::vector<unsigned char>* keep = nullptr);

// read_image through ITK's reader only (what read_image falls back to for other formats and
// for NIfTI files with intensity scaling or unusual datatypes); for tests.
Volume read_image_with_itk(const std::string& path);

}  // namespace spineparse::io
