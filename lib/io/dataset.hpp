// Dataset folders: which volumes form the cases of a cohort, and which masks go with them.
//
// Layouts: "original" (DIR/original_mr/Case{i}.nii.gz with DIR/mask/mask_case{i}.nii.gz, or the
// original_mr folder itself), "flat" (a folder of volumes where "mask_<id>" files, or same-named
// files in a mask/ or masks/ subfolder, are the masks) and "auto" (original when an original_mr
// folder is there). Hidden files (atomic writes in progress) are never cases.
#pragma once

#include <string>
#include <vector>

#include "spineparse/case.hpp"

namespace spineparse::io {

// The cases of a folder in natural order, each with attrs image_path and, when it has one,
// mask_path; a volume file given instead of a folder is one case without a mask. DICOM series
// anywhere under the folder are cases too (attrs dicom_files, dicom_series, series_description;
// "skipped" with the reason for series that are not volumes or do not match `series_filter`, a
// case-insensitive regular expression on SeriesDescription). Throws std::runtime_error naming
// the path when it does not exist.
std::vector<CaseSeed> list_dataset(const std::string& dir, const std::string& layout,
                                   const std::string& series_filter = "");

}  // namespace spineparse::io
