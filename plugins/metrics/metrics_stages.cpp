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
  using namespace plugins::metrics;
  r.add_stage<Evaluate>(evaluate_description());
  r.add_stage<Statistics>(statistics_description());
  r.add_stage<Qc>(qc_description(), qc_attributes());
  r.add_stage<Measure>(measure_description(), measure_attributes());
  r.add_stage<WriteDicomSr>(write_dicom_sr_description(), write_dicom_sr_attributes());
  r.add_stage<Report>(report_description(), report_attributes());
}

}  // namespace spineparse
