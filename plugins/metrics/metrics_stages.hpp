// The metrics plugin's stage kinds: metrics.evaluate, metrics.report.
#pragma once

namespace spineparse {
class Registry;
void register_metrics_stages(Registry& registry);
}  // namespace spineparse
