// The refine plugin's stage kinds: refine.anatomy.
#pragma once

namespace spineparse {
class Registry;
void register_refine_stages(Registry& registry);
}  // namespace spineparse
