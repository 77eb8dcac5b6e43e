// Enhanced MR Image Storage (and its Legacy Converted form): one multi-frame file holds a whole
// volume, each frame placed by the per-frame and shared functional groups (PS3.3 C.7.6.16). Read
// with DCMTK into the same Volume a classic one-file-per-slice series gives.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "io/volume_io.hpp"

namespace spineparse::io {

// Whether a SOPClassUID is one whose object is a volume in one file: Enhanced MR Image Storage or
// Legacy Converted Enhanced MR Image Storage.
bool is_enhanced_mr_class(const std::string& sop_class_uid);

// Whether `path` is a DICOM file of such a class (false when unreadable).
bool is_enhanced_mr_file(const std::string& path);

// The frames of `file` as float32 [D, H, W] in position order, with ITK's geometry convention
// (LPS; H along a row, W down the columns, D along the slice normal), each frame's
// RescaleSlope/Intercept applied. Uncompressed or RLE pixel data. Refuses, naming the file: frames
// without ImagePositionPatient or ImageOrientationPatient in either functional group, frames in
// different orientations, two frames at one position (several volumes in one object: echoes or
// time points), uneven slice spacing, pixel data shorter than the frames, other transfer
// syntaxes, and sizes over `limits`. A missing PixelSpacing is a warning (1 mm is used).
Volume read_enhanced_mr(const std::string& file, const ReadLimits& limits = {});

// The ImagePositionPatient of each frame of such an object, in storage order (frame 1 first), as
// a DICOM-SEG references frames. Throws naming the file when a frame has none.
std::vector<std::array<double, 3>> enhanced_frame_positions(const std::string& file);

}  // namespace spineparse::io
