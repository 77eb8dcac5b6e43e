// Reading and writing volumes, with the method's axis convention. Reading checks the header
// (io/header.hpp) and decodes binary voxels itself (io/voxel_data.hpp); ITK supplies the geometry
// of NIfTI-1, NRRD and MetaImage headers, NRRD's text encodings, and every write.
//
// Arrays follow spec 1.1: the file's array axes are (H, W, D) = ITK index axes (0, 1, 2), taken as
// they are (no reorientation). In memory a volume is C-order [D, H, W], the layout every later
// stage uses; geometry (spacing, origin, direction) is kept as ITK reports it and written back
// unchanged, so outputs overlay their input in ITK-SNAP or 3D Slicer.
#pragma once

#include <string>
#include <vector>

#include "io/header.hpp"
#include "io/voxel_data.hpp"
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

struct Volume {
  NdArrayPtr data;  // float32 [D, H, W] for images, uint8 for label maps
  Geometry geometry;
  VolumeInfo info;
  std::vector<std::string> warnings;  // valid but unusual header fields (HeaderFacts::warnings)
};

// Reads a 3-D scalar volume (trailing axes of length 1 are dropped; anything else that is not
// 3-D is refused) as float32 [D,H,W]. The header is checked first (check_volume_file, with
// `limits`), so nothing is allocated for a file that lies about its size; NIfTI data is checked
// for truncation and non-finite values. Throws std::runtime_error naming the file.
Volume read_image(const std::string& path, const ReadLimits& limits = {});
// Reads a label map as uint8 [D,H,W]; refuses values outside [0, max_label] or non-integers.
Volume read_labels(const std::string& path, int max_label, const ReadLimits& limits = {});

// Writes a [D,H,W] array (uint8, int16 or float32) with the given geometry, atomically
// (temporary file in the same folder, then rename). The format follows the extension.
void write_volume(const std::string& path, const NdArray& data, const Geometry& geometry);

// File name without folder and without the volume extension: "a/Case1.nii.gz" -> "Case1".
std::string volume_stem(const std::string& path);
bool is_volume_file(const std::string& path);

// ITK's process-wide state (its object factories, the threader's globals) made once, under a
// lock: ITK 5.2 makes it on first use without one, so two threads making their first ITK objects
// at once corrupt it (a hang or crash at exit). Every function here that uses ITK calls it first;
// call it before using ITK directly from several threads.
void init_itk();

}  // namespace spineparse::io

namespace spineparse::io {

// read_image through ITK's reader only (what read_image uses for NRRD and MetaImage); for tests.
Volume read_image_with_itk(const std::string& path);

}  // namespace spineparse::io
