// The QC viewer page of one case (qc/<case>.html): the MR with the labels in the fixed palette,
// and where a mask exists the difference to it, embedded in the page as gzip NIfTI (base64) and
// drawn by NiiVue (niivue.umd.js, the report's copy beside the page), so that the page opens from
// disk with no network and no request for a sibling file (which Chromium refuses on file://).
//
// Contract of the page: sagittal plane by default, coronal, axial and 3-D on buttons; a slider
// for the slice, one for the labels' opacity, a toggle per structure, the structure and MR value
// under the cursor, a difference view (missed voxels red, spurious blue) where a mask exists;
// once the first picture is drawn the element #viewer carries data-viewer-ready="<case>". The
// URL's hash sets the starting view: #plane=sagittal|coronal|axial|3d&slice=0..1&opacity=0..1&
// labels=0|1&diff=0|1&lines=0|1. With measurements, their endplates (yellow) and heights (white)
// are a layer of their own, on by default. Without WebGL2 (or without the viewer script) the page shows the static
// overlay picture instead and #viewer carries data-viewer-fallback.
#pragma once

#include <array>
#include <cmath>
#include <string>

#include "spineparse/case.hpp"
#include "spineparse/ndarray.hpp"

namespace spineparse::metrics {

// The volumes a viewer page embeds, at most max_side voxels along every axis.
struct ViewerVolumes {
  NdArrayPtr image;   // uint8 [D,H,W]: the MR windowed to its 0.5th-99.5th percentiles
  NdArrayPtr labels;  // uint8 [D,H,W]
  NdArrayPtr diff;    // uint8: 1 missed (truth labelled, prediction differs), 2 spurious
                      // (prediction labelled, truth background); null without a mask
  NdArrayPtr lines;   // uint8: the measurements drawn, 1 endplates, 2 heights, each two voxels
                      // either side across the patient's left-right axis; null without them
  Geometry geometry;  // of the reduced grid (same physical extent, centred blocks)
  std::array<std::int64_t, 3> factor{1, 1, 1};  // per array axis [D,H,W]
};

// Each axis longer than max_side voxels is reduced by the smallest integer factor that brings it
// to max_side or less: block means for the image, the block's centre voxel for labels and mask.
struct CaseMeasurement;
ViewerVolumes viewer_volumes(const NdArray& image, const NdArray& labels, const NdArray* mask,
                             const Geometry& g, int max_side = 256,
                             const CaseMeasurement* measurements = nullptr);

struct ViewerPage {
  std::string id;
  std::string mr_nii_gz, labels_nii_gz, diff_nii_gz, lines_nii_gz;  // file bytes; the last two
                                                                     // may be empty
  std::string viewer_script = "niivue.umd.js";        // relative to the page
  std::string fallback_png;                           // relative to the page; may be empty
  std::string note;                                   // shown under the title (e.g. reduced)
  // metrics.qc's confidence per structure (by label - 1; NaN: not judged) and whether each is
  // reliable (1; 0, or -1 when its case failed QC: shown greyed with a question mark).
  std::array<double, 19> confidence, reliable;
  ViewerPage() { confidence.fill(std::nan("")), reliable.fill(std::nan("")); }
};
std::string viewer_page_html(const ViewerPage& page);

}  // namespace spineparse::metrics
