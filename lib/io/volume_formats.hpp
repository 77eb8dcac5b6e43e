// The volume file formats, one table: which file names are volumes, which a writer can write, and
// how the reader recognises each format (by content: the name only tells NIfTI pairs and
// MetaImage apart). Listing a dataset, reading, writing, --resume's output checks and the error
// messages all read it; adding a format is an entry here plus its header reader (header.cpp /
// header_text.cpp) and, if ITK does not read it, its ITK IO in volume_io.cpp.
#pragma once

#include <string>
#include <vector>

#include "io/ascii.hpp"

namespace spineparse::io {

enum class VolumeFormat { kNifti, kNrrd, kMetaImage };

struct VolumeExtension {
  const char* extension;  // the end of the file name, ".nii.gz"
  VolumeFormat format;
  bool listed;    // a file a dataset lists as a case (not the data half of a NIfTI pair)
  bool writable;  // write_volume writes it (and --resume checks outputs with this ending)
  const char* recognised_by;
};

// Longer endings first, so that ".nii.gz" wins over a shorter match.
inline constexpr VolumeExtension kVolumeExtensions[] = {
    {".nii.gz", VolumeFormat::kNifti, true, true, "NIfTI-1/2 header (sizeof_hdr 348/540), gzip"},
    {".nii", VolumeFormat::kNifti, true, true, "NIfTI-1/2 header (sizeof_hdr 348/540)"},
    {".hdr", VolumeFormat::kNifti, true, false, "NIfTI pair header (magic ni1/ni2), data in .img"},
    {".img.gz", VolumeFormat::kNifti, false, false, "the gzipped data of a NIfTI pair"},
    {".nrrd", VolumeFormat::kNrrd, true, true, "text header starting NRRD"},
    {".nhdr", VolumeFormat::kNrrd, true, false, "text header starting NRRD, detached data"},
    {".mha", VolumeFormat::kMetaImage, true, true, "text header (ObjectType/NDims ...)"},
    {".mhd", VolumeFormat::kMetaImage, true, false, "text header, detached data file"},
};

// The table's entry whose extension ends `name` (after at least one other character), or nullptr.
inline const VolumeExtension* volume_extension_of(const std::string& name) {
  for (const auto& e : kVolumeExtensions)
    if (name.size() > std::string(e.extension).size() && ends_with(name, e.extension)) return &e;
  return nullptr;
}

// The listed (or, with writable_only, the writable) extensions: ".nii.gz", ".nii", ...
inline std::vector<std::string> volume_extensions(bool writable_only = false) {
  std::vector<std::string> out;
  for (const auto& e : kVolumeExtensions)
    if (writable_only ? e.writable : e.listed) out.push_back(e.extension);
  return out;
}

}  // namespace spineparse::io
