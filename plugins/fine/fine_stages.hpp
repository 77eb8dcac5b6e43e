// The fine plugin's stage kinds: fine.prepare, fine.resunet, fine.to_raw.
#pragma once

namespace spineparse {
class Registry;
void register_fine_stages(Registry& registry);
}  // namespace spineparse
