#include "metrics_stages.hpp"

#include "evaluate.hpp"
#include "measure.hpp"
#include "report.hpp"
#include "spineparse/registry.hpp"
#include "statistics.hpp"
#include "write_dicom_sr.hpp"

namespace spineparse {

void register_metrics_stages(Registry& r) {
  r.add_stage(metrics::evaluate_description(),
              [](const Params& p) { return std::make_unique<metrics::Evaluate>(p); });
  r.add_stage(metrics::statistics_description(),
              [](const Params& p) { return std::make_unique<metrics::Statistics>(p); });
  r.add_stage(metrics::measure_description(),
              [](const Params& p) { return std::make_unique<metrics::Measure>(p); });
  r.add_stage(metrics::write_dicom_sr_description(),
              [](const Params& p) { return std::make_unique<metrics::WriteDicomSr>(p); });
  r.add_stage(metrics::report_description(),
              [](const Params& p) { return std::make_unique<metrics::Report>(p); });
}

}  // namespace spineparse
