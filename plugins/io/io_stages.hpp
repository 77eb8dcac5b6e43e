// The io plugin's stage kinds: io.read_dataset, io.normalise, io.write_nifti.
#pragma once

namespace spineparse {
class Registry;
void register_io_stages(Registry& registry);
}  // namespace spineparse
