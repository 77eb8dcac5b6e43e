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
  r.add_stage<plugins::io::ReadDataset>(plugins::io::read_dataset_description());
  r.add_stage<plugins::io::Normalise>(plugins::io::normalise_description());
  r.add_stage<plugins::io::Reorient>(plugins::io::reorient_description());
  r.add_stage<plugins::io::RestoreOrientation>(plugins::io::restore_orientation_description());
  r.add_stage<plugins::io::WriteDicomSeg>(plugins::io::write_dicom_seg_description());
  r.add_stage<plugins::io::WriteNifti>(plugins::io::write_nifti_description());
  // --resume trusts a volume only when its header is valid and all its data is there.
  for (const char* suffix : {".nii.gz", ".nii", ".nrrd", ".mha"})
    r.add_output_check(suffix, [](const std::string& path) { return io::volume_problem(path); });
}

}  // namespace spineparse
