// A case's measurements as a DICOM Structured Report (TID 1500 "Imaging Measurement Report",
// DCMTK's dcmsr/cmr), beside the case's DICOM-SEG, so that a PACS viewer shows the numbers.
//
// Contract: one TID 1411 volumetric ROI group per structure with at least one value, whose
// Referenced Segment is the SEG's segment of that structure (matched by segment label), with the
// source series, the structure's SNOMED CT finding site and its name as tracking identifier; one
// TID 1501 group for the case's alignment (lordosis, sacral slope, segmental angles). Blank values
// are left out. Patient and study come from the first source image; the evidence lists the source
// images and the SEG. Concept codes: kMeasurementCodes (below), in docs/measurements.md.
#pragma once

#include <string>
#include <vector>

#include "metrics/measure.hpp"
#include "metrics/measurement_columns.hpp"

namespace spineparse::metrics {

// Writes the report to `path` atomically; throws std::runtime_error naming the file at fault.
void write_measurement_sr(const std::string& path, const CaseMeasurement& m,
                          const std::string& seg_path,
                          const std::vector<std::string>& source_files);

// One numeric value read back from a report: its group's tracking identifier (the structure's
// name, or "alignment"), the concept's code value and meaning, the value and its UCUM unit.
struct SrValue {
  std::string group, code, meaning, unit;
  double value = 0;
};
// Reads a report written by write_measurement_sr (any TID 1500 report with numeric values) back
// with DCMTK; also returns the SOP instance UIDs of its evidence. Throws naming the file.
std::vector<SrValue> read_measurement_sr(const std::string& path,
                                         std::vector<std::string>* evidence_instances = nullptr);

}  // namespace spineparse::metrics
