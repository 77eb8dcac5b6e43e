#include "io/volume_io.hpp"

#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>
#include <itkImageIOFactory.h>
#include <itkMetaImageIO.h>
#include <itkMultiThreaderBase.h>
#include <itkNiftiImageIO.h>
#include <itkNrrdImageIO.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>

#include "io/ascii.hpp"
#include "io/gzip_file.hpp"
#include "io/nifti_types.hpp"
#include "io/volume_formats.hpp"
#include "spineparse/files.hpp"

namespace spineparse::io {
namespace fs = std::filesystem;

namespace {

// ITK's reader and writer of a format.
itk::ImageIOBase::Pointer itk_io(VolumeFormat f) {
  switch (f) {
    case VolumeFormat::kNifti:
      return itk::NiftiImageIO::New().GetPointer();
    case VolumeFormat::kNrrd:
      return itk::NrrdImageIO::New().GetPointer();
    case VolumeFormat::kMetaImage:
      return itk::MetaImageIO::New().GetPointer();
  }
  return nullptr;
}

// Picks the IO explicitly by content, so reading never depends on factory registration.
itk::ImageIOBase::Pointer make_io(const std::string& path, bool for_write) {
  init_itk();
  std::vector<itk::ImageIOBase::Pointer> candidates;
  for (VolumeFormat f : {VolumeFormat::kNifti, VolumeFormat::kNrrd, VolumeFormat::kMetaImage})
    candidates.push_back(itk_io(f));
  for (auto& io : candidates) {
    if (for_write ? io->CanWriteFile(path.c_str()) : io->CanReadFile(path.c_str())) return io;
  }
  auto io = itk::ImageIOFactory::CreateImageIO(
      path.c_str(), for_write ? itk::ImageIOFactory::IOFileModeEnum::WriteMode
                              : itk::ImageIOFactory::IOFileModeEnum::ReadMode);
  if (!io) {
    if (!for_write && !fs::exists(path)) throw std::runtime_error(path + ": no such file");
    throw std::runtime_error(path + (for_write ? ": no image format writes this extension"
                                               : ": not an image file ITK can read (corrupt, "
                                                 "truncated or unknown format)"));
  }
  return io;
}

Geometry geometry_of(const itk::ImageIOBase& io) {
  Geometry g;
  for (unsigned i = 0; i < 3 && i < io.GetNumberOfDimensions(); ++i) {
    g.spacing[i] = io.GetSpacing(i);
    g.origin[i] = io.GetOrigin(i);
    auto dir = io.GetDirection(i);  // column i of the direction matrix
    for (unsigned r = 0; r < 3 && r < dir.size(); ++r) g.direction[r * 3 + i] = dir[r];
  }
  return g;
}

using FloatImage = itk::Image<float, 3>;

// Each of D planes of `in`, an R x C matrix (row-major), into `out` transposed (C x R), in
// blocks that stay in cache.
template <typename Src, typename Dst>
void transpose_planes(const Src* in, Dst* out, std::int64_t R, std::int64_t C, std::int64_t D) {
  constexpr std::int64_t B = 32;
  for (std::int64_t z = 0; z < D; ++z) {
    const Src* s = in + z * R * C;
    Dst* d = out + z * R * C;
    for (std::int64_t r0 = 0; r0 < R; r0 += B)
      for (std::int64_t c0 = 0; c0 < C; c0 += B)
        for (std::int64_t r = r0; r < std::min(R, r0 + B); ++r)
          for (std::int64_t c = c0; c < std::min(C, c0 + B); ++c)
            d[c * R + r] = static_cast<Dst>(s[r * C + c]);
  }
}

// ITK buffer (x fastest: H, then W, then D) -> C-order [D, H, W], and back.
template <typename Src, typename Dst>
void itk_to_dhw(const Src* in, Dst* out, std::int64_t H, std::int64_t W, std::int64_t D) {
  transpose_planes(in, out, W, H, D);
}
template <typename Src, typename Dst>
void dhw_to_itk(const Src* in, Dst* out, std::int64_t H, std::int64_t W, std::int64_t D) {
  transpose_planes(in, out, H, W, D);
}

// An ITK image of size (H, W, D) with the geometry `g`.
template <typename T>
typename itk::Image<T, 3>::Pointer itk_image(std::int64_t H, std::int64_t W, std::int64_t D,
                                             const Geometry& g) {
  using Image = itk::Image<T, 3>;
  init_itk();
  auto img = Image::New();
  typename Image::RegionType region;
  region.SetSize({{static_cast<itk::SizeValueType>(H), static_cast<itk::SizeValueType>(W),
                   static_cast<itk::SizeValueType>(D)}});
  img->SetRegions(region);
  img->Allocate();
  typename Image::SpacingType sp;
  typename Image::PointType org;
  typename Image::DirectionType dir;
  for (int i = 0; i < 3; ++i) {
    sp[i] = g.spacing[i];
    org[i] = g.origin[i];
    for (int j = 0; j < 3; ++j) dir[i][j] = g.direction[i * 3 + j];
  }
  img->SetSpacing(sp);
  img->SetOrigin(org);
  img->SetDirection(dir);
  return img;
}

template <typename T>
void itk_write(const std::string& path, const std::string& io_path,
               const typename itk::Image<T, 3>::Pointer& img, bool compress) {
  auto writer = itk::ImageFileWriter<itk::Image<T, 3>>::New();
  writer->SetFileName(path);
  writer->SetImageIO(make_io(io_path, true));
  writer->SetInput(img);
  writer->SetUseCompression(compress);
  writer->Update();
}

// `path` (.nii.gz) as gzip at level 1 (ISA-L's, write_gzip) of ITK's own .nii: the 352-byte
// header ITK writes for this geometry and type (taken from a one-voxel image, its sizes set to H,
// W, D), then the voxels.
// ITK 5.2's NIfTI writer ignores the compression level and spends 6x longer at level 6 for files
// a third smaller. Sizes NIfTI-1 cannot hold go through ITK (returns false).
template <typename T>
bool write_nifti_gz(const std::string& path, const std::string& final_path, const T* voxels,
                    std::int64_t H, std::int64_t W, std::int64_t D, const Geometry& g) {
  constexpr std::int64_t kMaxDim = 32767;
  if (H > kMaxDim || W > kMaxDim || D > kMaxDim) return false;
  const std::string one = temp_path_for(final_path.substr(0, final_path.size() - 3));
  std::string header;
  try {
    itk_write<T>(one, final_path, itk_image<T>(1, 1, 1, g), false);
    header = read_file(one);
  } catch (...) {
    std::remove(one.c_str());
    throw;
  }
  std::remove(one.c_str());
  if (header.size() != 352 + sizeof(T))
    throw std::runtime_error("unexpected NIfTI header from ITK (" + std::to_string(header.size()) +
                             " bytes)");
  header.resize(352);
  const std::int16_t dims[4] = {3, static_cast<std::int16_t>(H), static_cast<std::int16_t>(W),
                                static_cast<std::int16_t>(D)};
  std::memcpy(&header[40], dims, sizeof dims);  // dim[0..3], in this machine's order as ITK writes
  write_gzip(path, {{header.data(), header.size()},
                    {voxels, static_cast<std::size_t>(H * W * D) * sizeof(T)}});
  return true;
}

template <typename T>
void write_typed(const std::string& path, const NdArray& data, const Geometry& g) {
  const std::int64_t D = data.dim(0), H = data.dim(1), W = data.dim(2);
  auto img = itk_image<T>(H, W, D, g);
  T* out = img->GetBufferPointer();
  switch (data.dtype()) {
    case DType::kUInt8:
      dhw_to_itk(data.data<std::uint8_t>(), out, H, W, D);
      break;
    case DType::kInt16:
      dhw_to_itk(data.data<std::int16_t>(), out, H, W, D);
      break;
    case DType::kFloat32:
      dhw_to_itk(data.data<float>(), out, H, W, D);
      break;
    default:
      throw std::runtime_error(std::string("cannot write ") + dtype_name(data.dtype()) +
                               " volumes");
  }
  const std::string tmp = temp_path_for(path);
  try {
    const bool done = ends_with(path, ".nii.gz") && write_nifti_gz<T>(tmp, path, out, H, W, D, g);
    if (!done) itk_write<T>(tmp, path, img, true);
  } catch (const std::exception& e) {
    std::remove(tmp.c_str());
    const auto* itk_error = dynamic_cast<const itk::ExceptionObject*>(&e);
    throw std::runtime_error("cannot write " + path + ": " +
                             (itk_error ? itk_error->GetDescription() : e.what()));
  }
  // ITK's writers ignore short writes (a full disk): read what was written back before it may
  // replace anything.
  if (const std::string problem = volume_problem(tmp); !problem.empty()) {
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot write " + path + " (disk full?): the written file is " +
                             "incomplete: " + problem);
  }
  commit_file(tmp, path);
}

}  // namespace

void init_itk() {
  static std::once_flag once;
  std::call_once(once, [] {
    itk::Image<float, 3>::New();  // the object factories (ObjectFactoryBase::Initialize)
    itk::NiftiImageIO::New();
    itk::NrrdImageIO::New();
    itk::MetaImageIO::New();
    itk::ImageFileReader<itk::Image<float, 3>>::New();
    itk::ImageFileWriter<itk::Image<float, 3>>::New();
    itk::MultiThreaderBase::New();  // the global threader settings (and its pool)
    // ITK 5.2 creates its global flags lazily without a lock: two threads reading one first
    // both allocate it and one allocation is lost (LeakSanitizer sees it), so read them here.
    itk::Object::GetGlobalWarningDisplay();
    itk::DataObject::GetGlobalReleaseDataFlag();
  });
}

bool is_volume_file(const std::string& path) {
  // A .hdr is a NIfTI pair (or an Analyze header, refused with its reason).
  const VolumeExtension* e = volume_extension_of(fs::path(path).filename().string());
  return e && e->listed;
}

std::string volume_stem(const std::string& path) {
  const std::string name = fs::path(path).filename().string();
  if (const VolumeExtension* e = volume_extension_of(name))
    return name.substr(0, name.size() - std::string(e->extension).size());
  return fs::path(name).stem().string();
}

namespace {

// The header as ITK reads it; only called on files check_volume_file accepted.
VolumeInfo itk_info(const std::string& path) {
  VolumeInfo info;
  info.path = path;
  auto io = make_io(path, false);
  try {
    io->SetFileName(path);
    io->ReadImageInformation();
  } catch (const itk::ExceptionObject& e) {
    throw std::runtime_error(path + ": cannot read header: " + e.GetDescription());
  }
  info.dimensions = static_cast<int>(io->GetNumberOfDimensions());
  for (int i = 0; i < info.dimensions; ++i)
    info.size.push_back(static_cast<std::int64_t>(io->GetDimensions(i)));
  info.components = static_cast<int>(io->GetNumberOfComponents());
  info.component_type = itk::ImageIOBase::GetComponentTypeAsString(io->GetComponentType());
  info.geometry = geometry_of(*io);
  return info;
}

const char* nifti_type_name(int datatype) {
  const char* name = nullptr;
  visit_nifti_type(datatype, [&](auto t) { name = t.itk_name; });
  if (!name) throw std::logic_error("nifti_type_name: datatype not checked");
  return name;
}

// Checks read_image and read_image_with_itk share; returns the size as H, W, D.
std::array<std::int64_t, 3> check_scalar_3d(const std::string& path, const VolumeInfo& info) {
  const auto& s = info.size;
  auto dims = [&] {
    std::string d;
    for (std::size_t i = 0; i < s.size(); ++i) d += (i ? "x" : "") + std::to_string(s[i]);
    return d;
  };
  int effective = info.dimensions;
  while (effective > 3 && s[effective - 1] == 1) --effective;
  if (effective != 3) {
    throw std::runtime_error(path + " is " + std::to_string(info.dimensions) + "-D (" + dims() +
                             "); a 3-D volume (H x W x slices) is expected");
  }
  if (info.components != 1) {
    throw std::runtime_error(path + " has " + std::to_string(info.components) +
                             " components per voxel; a scalar volume is expected");
  }
  for (int i = 0; i < 3; ++i) {
    if (s[i] <= 0) throw std::runtime_error(path + " is empty (size " + dims() + ")");
  }
  return {s[0], s[1], s[2]};
}

Geometry geometry_of_image(const FloatImage& img) {
  Geometry g;
  for (int i = 0; i < 3; ++i) {
    g.spacing[i] = img.GetSpacing()[i];
    g.origin[i] = img.GetOrigin()[i];
    for (int j = 0; j < 3; ++j) g.direction[i * 3 + j] = img.GetDirection()[i][j];
  }
  return g;
}

// The ITK reader; with voxels=false only the header (geometry as the image reports it: ITK
// resolves qform/sform the same way for every reader).
Volume itk_read(const std::string& path, VolumeInfo info, bool voxels) {
  init_itk();
  auto reader = itk::ImageFileReader<FloatImage>::New();
  reader->SetFileName(path);
  reader->SetImageIO(make_io(path, false));
  try {
    if (voxels)
      reader->Update();
    else
      reader->UpdateOutputInformation();
  } catch (const itk::ExceptionObject& e) {
    throw std::runtime_error(path +
                             (voxels ? ": cannot read voxels (truncated or corrupt file?): "
                                     : ": cannot read the header: ") +
                             e.GetDescription());
  }
  FloatImage::Pointer img = reader->GetOutput();
  Volume v;
  v.info = std::move(info);
  v.geometry = geometry_of_image(*img);
  if (voxels) {
    const auto size = img->GetLargestPossibleRegion().GetSize();
    const std::int64_t H = size[0], W = size[1], D = size[2];
    auto arr = NdArray::make<float>({D, H, W});
    itk_to_dhw(img->GetBufferPointer(), arr->data<float>(), H, W, D);
    v.data = arr;
  }
  return v;
}

}  // namespace

Volume read_image_with_itk(const std::string& path) {
  check_volume_file(path, ReadLimits{0, 0});
  VolumeInfo info = itk_info(path);
  check_scalar_3d(path, info);
  return itk_read(path, std::move(info), true);
}

namespace {

// A checked file with binary data: voxels decoded here; the geometry of NIfTI (1 and 2) from the
// header by our own reading of qform and sform (header.cpp: ITK's rules, without ITK 5.2's refusal
// of valid sform-only and improper-rotation headers that nibabel writes), of other formats as ITK
// reads it.
// label_max >= 0: uint8 labels when every voxel is one (read_label_voxels), else float.
Volume read_binary(const std::string& path, const HeaderFacts& h, VolumeInfo info, int label_max) {
  NdArrayPtr voxels = label_max >= 0 ? read_label_voxels(path, h, label_max) : read_voxels(path, h);
  Volume v;
  if (h.format != "nifti1" && h.format != "nifti2") {
    v = itk_read(path, std::move(info), false);
  } else {
    v.info = std::move(info);
    v.geometry = h.geometry;
  }
  v.data = voxels;
  return v;
}

// A checked volume as read_image reads it; with label_max >= 0 (at most 255), binary data whose
// voxels are all labels in 0..label_max comes as uint8 instead of float.
Volume read_checked(const std::string& path, const ReadLimits& limits, int label_max) {
  const HeaderFacts h = check_volume_file(path, limits);
  const bool nifti = h.format == "nifti1" || h.format == "nifti2";
  VolumeInfo info;
  info.path = path;
  info.dimensions = static_cast<int>(h.size.size());
  info.size = h.size;
  check_scalar_3d(path, info);  // from the header, before ITK sees the file
  if (nifti) {
    info.component_type = nifti_type_name(h.datatype);
    info.geometry = h.geometry;
  } else {
    info = itk_info(path);
    check_scalar_3d(path, info);
  }
  Volume v = h.binary ? read_binary(path, h, std::move(info), label_max)
                      : itk_read(path, std::move(info), true);
  v.warnings = h.warnings;
  return v;
}

}  // namespace

Volume read_image(const std::string& path, const ReadLimits& limits) {
  return read_checked(path, limits, -1);
}

Volume read_labels(const std::string& path, int max_label, const ReadLimits& limits) {
  Volume f = read_checked(path, limits, max_label >= 0 && max_label <= 255 ? max_label : -1);
  if (f.data->dtype() == DType::kUInt8) return f;  // every voxel a label, decoded as one
  const float* src = f.data->data<float>();
  auto arr = NdArray::make<std::uint8_t>(f.data->shape());
  std::uint8_t* dst = arr->data<std::uint8_t>();
  for (std::int64_t i = 0; i < f.data->numel(); ++i) {
    const float x = src[i];
    if (!(x >= 0.0f && x <= static_cast<float>(max_label)) || x != std::floor(x)) {
      throw std::runtime_error(path + ": voxel value " + std::to_string(x) +
                               " is not a label in 0.." + std::to_string(max_label));
    }
    dst[i] = static_cast<std::uint8_t>(x);
  }
  Volume v;
  v.data = arr;
  v.geometry = f.geometry;
  v.info = f.info;
  v.warnings = f.warnings;
  return v;
}

void write_volume(const std::string& path, const NdArray& data, const Geometry& geometry) {
  if (data.ndim() != 3)
    throw std::runtime_error("write " + path + ": expected a [D,H,W] array, got " +
                             data.shape_string());
  fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  switch (data.dtype()) {
    case DType::kUInt8:
      write_typed<std::uint8_t>(path, data, geometry);
      break;
    case DType::kInt16:
      write_typed<std::int16_t>(path, data, geometry);
      break;
    case DType::kFloat32:
      write_typed<float>(path, data, geometry);
      break;
    default:
      throw std::runtime_error("write " + path + ": unsupported dtype " + dtype_name(data.dtype()));
  }
}

}  // namespace spineparse::io
