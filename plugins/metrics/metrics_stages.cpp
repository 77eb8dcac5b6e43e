#include "metrics_stages.hpp"

#include "evaluate.hpp"
#include "measure.hpp"
#include "report.hpp"
#include "spineparse/registry.hpp"
#include "statistics.hpp"
#include "write_dicom_sr.hpp"

namespace spineparse {

void register_metrics_stages(Registry& r) {
  r.add_stage<metrics::Evaluate>(metrics::evaluate_description());
  r.add_stage<metrics::Statistics>(metrics::statistics_description());
  r.add_stage<metrics::Measure>(metrics::measure_description());
  r.add_stage<metrics::WriteDicomSr>(metrics::write_dicom_sr_description());
  r.add_stage<metrics::Report>(metrics::report_description());
}

}  // namespace spineparse
