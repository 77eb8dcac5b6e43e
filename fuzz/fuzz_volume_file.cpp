// libFuzzer: reading a volume file as the reader does before ITK is involved: the file-level and
// header checks, the data scan and decoding (all of the NIfTI-2 path; every binary format's
// voxels). The input is
// written to a temporary file whose name (.nii, .nii.gz, .nrrd, .mha) the first byte picks;
// limits keep allocations small. (ITK's own readers are third-party: not fuzzed here.)
#include <cstdint>
#include <cstdlib>
#include <stdexcept>

#include "fuzz_file.hpp"
#include "io/header.hpp"
#include "io/voxel_data.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static const char* kExt[] = {".nii", ".nii.gz", ".nrrd", ".mha"};
  const spineparse::fuzz::FuzzFile file(data + 1, size - 1, kExt[data[0] % 4]);
  const std::string& path = file.path();
  try {
    const auto h = spineparse::io::check_volume_file(path, {1 << 20, 512});
    if (h.binary) {
      auto v = spineparse::io::read_voxels(path, h);
      if (v->numel() != h.voxels) std::abort();
    }
  } catch (const std::runtime_error&) {
  }
  (void)spineparse::io::volume_problem(path);
  return 0;
}
