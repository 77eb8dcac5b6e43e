// The per-level measurement columns, one table: measurements.csv's columns and their order, the
// per-case JSON record, summary.json's statistics and outliers, the report's level table, the
// DICOM SR's concepts and the column table of docs/measurements.md all come from it. Adding a
// column is an entry here (and the value computed in measure.cpp).
#pragma once

#include <string>
#include <vector>

#include "metrics/measure.hpp"

namespace spineparse::metrics {

// Coding scheme designator of the concepts no standard code covers (a DICOM "99" local scheme).
inline constexpr const char* kMeasurementCodingScheme = "99SPINEPARSE";

struct MeasurementColumn {
  const char* name;                 // CSV column and JSON key
  double LevelMeasurement::*real;   // the value (NaN: not measured) ...
  int LevelMeasurement::*integer;   // ... or an integer one (-1: not measured)
  const char* unit;                 // UCUM: mm, ml, deg, 1
  const char* applies_to;           // vertebrae, discs, all
  const char* description;
  // The DICOM SR concept (code, scheme, meaning); code nullptr: not in the SR.
  const char* sr_code;
  const char* sr_scheme;
  const char* sr_meaning;
  bool summarised;        // summary.json's statistics and outliers
  const char* report;     // the report's column heading; nullptr: not in its level table
  int report_decimals;

  double value(const LevelMeasurement& l) const;  // NaN when not measured
  void set(LevelMeasurement& l, double v) const;
};

const std::vector<MeasurementColumn>& measurement_columns();

// The table of docs/measurements.md's "Columns" section (a test keeps the docs equal to it).
std::string measurement_columns_markdown();

}  // namespace spineparse::metrics
