// Entry point of the metrics plugin: evaluation and the QC report.
#include "metrics_stages.hpp"
#include "spineparse/plugin_api.hpp"

SPINEPARSE_PLUGIN("metrics", "0.1.0", spineparse::register_metrics_stages)
