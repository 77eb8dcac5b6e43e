#include "metrics_stages.hpp"

#include "evaluate.hpp"
#include "measure.hpp"
#include "qc.hpp"
#include "report.hpp"
#include "spineparse/registry.hpp"
#include "statistics.hpp"
#include "write_dicom_sr.hpp"

namespace spineparse {

void register_metrics_stages(Registry& r) {
  r.add_stage<plugins::metrics::Evaluate>(plugins::metrics::evaluate_description());
  r.add_stage<plugins::metrics::Statistics>(plugins::metrics::statistics_description());
  r.add_stage<plugins::metrics::Qc>(plugins::metrics::qc_description());
  r.add_stage<plugins::metrics::Measure>(plugins::metrics::measure_description());
  r.add_stage<plugins::metrics::WriteDicomSr>(plugins::metrics::write_dicom_sr_description());
  r.add_stage<plugins::metrics::Report>(plugins::metrics::report_description());
}

}  // namespace spineparse
