// The coarse plugin's stage kinds: coarse.preprocess, coarse.gcsn.
#pragma once

namespace spineparse {
class Registry;
void register_coarse_stages(Registry& registry);
}  // namespace spineparse
