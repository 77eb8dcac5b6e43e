// QC pictures: grey MR with the labels in a fixed 20-colour palette and a legend, written as PNG.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "spineparse/ndarray.hpp"

namespace spineparse::metrics {

// RGB of a label in the fixed palette (0 = none).
std::array<unsigned char, 3> label_colour(int label);

// Two panels (the mid-sagittal slice and the slice with the most labelled voxels) side by side,
// each shown with the long axis (W) vertical, scaled so its longer side is `max_size` pixels,
// then a legend.
// image float32 [D,H,W], labels uint8 [D,H,W]. Written with write_file_atomic: every write
// checked, so a full disk fails the case instead of leaving a short file.
void write_overlay_png(const std::string& path, const NdArray& image, const NdArray& labels,
                       int max_size = 384);

// An 8-bit RGB PNG of w x h pixels (rgb: row-major, 3 bytes each), encoded in memory.
std::string encode_png_rgb(int w, int h, const std::vector<unsigned char>& rgb);

}  // namespace spineparse::metrics
