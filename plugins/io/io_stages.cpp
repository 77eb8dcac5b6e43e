#include "io_stages.hpp"

#include "io/volume_io.hpp"
#include "normalise.hpp"
#include "read_dataset.hpp"
#include "reorient.hpp"
#include "spineparse/registry.hpp"
#include "write_dicom_seg.hpp"
#include "write_nifti.hpp"

namespace spineparse {

void register_io_stages(Registry& r) {
  r.add_stage(io::read_dataset_description(),
              [](const Params& p) { return std::make_unique<io::ReadDataset>(p); });
  r.add_stage(io::normalise_description(),
              [](const Params& p) { return std::make_unique<io::Normalise>(p); });
  r.add_stage(io::reorient_description(),
              [](const Params& p) { return std::make_unique<io::Reorient>(p); });
  r.add_stage(io::restore_orientation_description(),
              [](const Params& p) { return std::make_unique<io::RestoreOrientation>(p); });
  r.add_stage(io::write_dicom_seg_description(),
              [](const Params& p) { return std::make_unique<io::WriteDicomSeg>(p); });
  r.add_stage(io::write_nifti_description(),
              [](const Params& p) { return std::make_unique<io::WriteNifti>(p); });
  // --resume trusts a volume only when its header is valid and all its data is there.
  for (const char* suffix : {".nii.gz", ".nii", ".nrrd", ".mha"})
    r.add_output_check(suffix, [](const std::string& path) { return io::volume_problem(path); });
}

}  // namespace spineparse
