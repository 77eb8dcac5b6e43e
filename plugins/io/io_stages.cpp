#include "io_stages.hpp"

#include "io/volume_formats.hpp"
#include "io/volume_io.hpp"
#include "normalise.hpp"
#include "read_dataset.hpp"
#include "reorient.hpp"
#include "spineparse/registry.hpp"
#include "write_dicom_seg.hpp"
#include "write_nifti.hpp"

namespace spineparse {

void register_io_stages(Registry& r) {
  using namespace plugins::io;
  r.add_stage<ReadDataset>(read_dataset_description(), read_dataset_attributes());
  r.add_stage<Normalise>(normalise_description());
  r.add_stage<Reorient>(reorient_description(), reorient_attributes());
  r.add_stage<RestoreOrientation>(restore_orientation_description(),
                                  restore_orientation_attributes());
  r.add_stage<WriteDicomSeg>(write_dicom_seg_description(), write_dicom_seg_attributes());
  r.add_stage<WriteNifti>(write_nifti_description(), write_nifti_attributes());
  // --resume trusts a volume only when its header is valid and all its data is there.
  for (const auto& e : io::kVolumeExtensions)
    if (e.writable)
      r.add_output_check(e.extension, [](const std::string& path) { return io::volume_problem(path); });
}

}  // namespace spineparse
