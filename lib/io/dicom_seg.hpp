// DICOM-SEG output (DCMTK's dcmseg): a label map on a DICOM series' grid as a binary
// segmentation with one segment per structure, referencing the source images, so that viewers
// and PACS show it over the series.
#pragma once

#include <string>
#include <vector>

#include "spineparse/case.hpp"
#include "spineparse/ndarray.hpp"

namespace spineparse::io {

// `labels` uint8 [D,H,W] on the series' grid `g`, slice d taken from source_files[d] (the order
// read_dicom_series reads them in). Segments: the structures present (SpineParseNet's names;
// SNOMED CT vertebra codes, "intervertebral disc" for the discs), one frame per structure and
// slice that holds it. Patient, study and frame of reference come from the source. Written
// atomically; throws std::runtime_error naming the file.
void write_dicom_seg(const std::string& path, const NdArray& labels, const Geometry& g,
                     const std::vector<std::string>& source_files);

}  // namespace spineparse::io
