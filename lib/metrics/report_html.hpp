// The run's self-contained report page (report.html), built from a finished run's records.
#pragma once

#include <cstdint>
#include <string>

namespace spineparse::metrics {

// Builds report.html next to run.json from run.json, metrics/summary.json (if any) and the
// overlays that run.json's cases name: inline when they total at most embed_bytes, else linked
// by their path relative to the report. Returns the report's path; throws std::runtime_error
// naming the file that could not be read or written.
std::string write_report_html(const std::string& run_json_path, std::int64_t embed_bytes = 8 << 20);

}  // namespace spineparse::metrics
