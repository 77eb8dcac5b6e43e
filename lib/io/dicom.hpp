// DICOM series: found in a folder tree (Part 10 files, any name), checked (one orientation,
// evenly spaced slices, nothing missing or doubled) and read as one volume with its geometry.
#pragma once

#include <string>
#include <vector>

#include "io/header.hpp"
#include "io/volume_io.hpp"

namespace spineparse::io {

struct DicomSeries {
  std::string uid;          // SeriesInstanceUID
  std::string number;       // SeriesNumber
  std::string description;  // SeriesDescription
  std::string modality;
  std::string echo;         // EchoNumbers ("" when absent)
  std::string folder;              // the folder holding its files (their common parent)
  std::vector<std::string> files;  // in slice order where positions allow, else by name
  bool enhanced = false;  // one Enhanced MR object (io/dicom_enhanced.hpp): files has its file
  // Why this series cannot be a case ("" when it can): no pixel data, a segmentation, a single
  // image, a multi-frame object of another class.
  std::string not_a_volume;
};

// Every DICOM series under `dir` (recursively; files with the Part 10 preamble, whatever their
// names, and files named *.dcm, *.ima, *.dicom or DICOMDIR; volume files and hidden folders
// skipped), in order of folder, then series number. A series with several EchoNumbers is one
// series per echo (description " echo N"), and each Enhanced MR object is one of its own (with
// its file's name when its series has several); a file that is not a readable image
// (unparseable, empty, a DICOMDIR) is a series of its own with not_a_volume saying why.
std::vector<DicomSeries> find_dicom_series(const std::string& dir);

// A series as float32 [D, H, W] (D: the slices, in position order) with ITK's geometry (LPS);
// one Enhanced MR file is read by read_enhanced_mr. Every classic file is checked first
// (io/dicom_check.hpp). Refuses, naming the series and files: what
// that check refuses, mixed orientations or sizes, slices at one position, uneven or missing
// slices, and sizes over `limits`. A missing PixelSpacing is a warning (1 mm is used).
Volume read_dicom_series(const std::vector<std::string>& files, const ReadLimits& limits = {});

// The files of a series kept in one text (a case attribute): one path per line.
std::string file_list(const std::vector<std::string>& files);
std::vector<std::string> file_list(const std::string& text);

// A name safe for files: letters, digits, '.', '-' and '_' kept, runs of others become '_'.
std::string safe_name(const std::string& s);

}  // namespace spineparse::io
