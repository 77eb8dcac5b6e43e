// The case attributes that reading and writing volumes give a case, the one place their names are
// written down: io.read_dataset and `spineparse train` read the seeds' attributes, writers record
// their files for later stages and tools (a DICOM SR needs the DICOM-SEG; train reads the labels).
#pragma once

#include <string>

#include "spineparse/stage.hpp"

namespace spineparse::io {

// Seeds (lib/io/dataset.cpp): the volume's file (a DICOM series' first file), its mask when the
// cohort has one, and for DICOM the series' UID and its files (one per line, file_list()).
inline constexpr const char* kImagePathAttr = "image_path";
inline constexpr const char* kMaskPathAttr = "mask_path";
inline constexpr const char* kDicomSeriesAttr = "dicom_series";
inline constexpr const char* kDicomFilesAttr = "dicom_files";
// Set instead of a volume when the seed cannot be read (the reason); the case fails on reading.
inline constexpr const char* kProblemAttr = "problem";

// The file a writer wrote for a case: "output:labels" (io.write_nifti, field labels),
// "output:dicom_seg", "output:dicom_sr".
inline std::string output_attr(const std::string& what) { return "output:" + what; }

inline AttributeUse output_write(const std::string& what, const std::string& help) {
  return {output_attr(what), false, help, ""};
}

}  // namespace spineparse::io
