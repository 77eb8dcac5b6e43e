// The case attributes the measurement and report stages write, the one place their names are
// written down: later stages (the DICOM SR, the report page) and the report's whole-run page
// read them from the case or from run.json.
#pragma once

namespace spineparse::metrics {

// The case's measurement record (JSON, metrics.measure): heights, angles, grades per level.
inline constexpr const char* kMeasurementsAttr = "measurements";
// The report's pictures of the case: labels over the image, and the measured endplates.
inline constexpr const char* kOverlayAttr = "overlay";
inline constexpr const char* kMeasureOverlayAttr = "measure_overlay";
// The case's offline viewer page (metrics.report viewer=true).
inline constexpr const char* kViewerAttr = "viewer";

}  // namespace spineparse::metrics
