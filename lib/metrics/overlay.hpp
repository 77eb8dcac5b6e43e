// QC pictures: grey MR with the labels in a fixed 20-colour palette and a legend, written as PNG.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "spineparse/case.hpp"
#include "spineparse/ndarray.hpp"

namespace spineparse::metrics {

// RGB of a label in the fixed palette (0 = none).
std::array<unsigned char, 3> label_colour(int label);

// The QC picture of a case, in the anatomical display convention whatever the storage
// orientation and spacing: two sagittal panels (the middle slice along the patient's left-right
// axis, and the sagittal slice with the most labelled voxels) side by side, each with superior up
// and anterior to the left, every pixel the same physical size (nearest neighbour; the longer side
// of the plane `max_size` pixels), then a legend. The stored axes closest to the patient's axes
// are used (oblique scans: their nearest plane). image float32 [D,H,W], labels uint8 [D,H,W];
// geometry: the image's (LPS, direction columns the file axes H, W, D).
std::string render_overlay_png(const NdArray& image, const NdArray& labels,
                               const Geometry& geometry, int max_size = 384);
// The measurement picture of a case (metrics/measure.hpp): the spine's mid-sagittal slice (the
// median of the measured structures' centroids) around its labels (10 mm margin), labels faint,
// superior up and anterior left; every valid endplate as a line between its anterior and
// posterior ends (vertebrae yellow, discs cyan), the anterior, middle and posterior heights as
// white lines between a structure's endplates, each vertebra named beside its anterior border
// (red, with its grade, when Genant's grade is 1 or more). The longer side is max_size pixels.
struct CaseMeasurement;
// What the measurement pictures (here and in the viewer pages) draw of a case, in patient
// coordinates (LPS, mm): each valid endplate from its anterior to its posterior end, and for a
// structure with heights the anterior, middle and posterior heights between its endplates; discs'
// lines first, then the vertebrae's.
struct MeasurementLine {
  std::array<double, 3> a, b;
  int label;
  bool height;  // false: an endplate
};
std::vector<MeasurementLine> measurement_lines(const CaseMeasurement& m);

struct RgbImage {
  int w = 0, h = 0;
  std::vector<unsigned char> rgb;  // row-major, 3 bytes per pixel
};
RgbImage render_measurement_rgb(const NdArray& image, const NdArray& labels,
                                const Geometry& geometry, const CaseMeasurement& m,
                                int max_size = 480);
std::string render_measurement_png(const NdArray& image, const NdArray& labels,
                                   const Geometry& geometry, const CaseMeasurement& m,
                                   int max_size = 480);

// The same, written with write_file_atomic: every write checked, so a full disk fails the case
// instead of leaving a short file.
void write_overlay_png(const std::string& path, const NdArray& image, const NdArray& labels,
                       const Geometry& geometry, int max_size = 384);

// An 8-bit RGB PNG of w x h pixels (rgb: row-major, 3 bytes each), encoded in memory with
// deflate level 1: on MR noise 4x faster than level 6 for about 12 % more bytes.
std::string encode_png_rgb(int w, int h, const std::vector<unsigned char>& rgb);

}  // namespace spineparse::metrics
