// Writing DICOM series from volumes at test time (ITK's GDCM writer, one MR slice per file along
// the volume's k axis), so that tests need no stored DICOM files.
#pragma once

#include <itkGDCMImageIO.h>
#include <itkImage.h>
#include <itkImageSeriesWriter.h>
#include <itkMetaDataObject.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "spineparse/case.hpp"
#include "spineparse/ndarray.hpp"

namespace spineparse::testing {

struct DicomSeriesSpec {
  std::string folder;
  std::string series_uid = "1.2.826.0.1.3680043.8.498.1";
  std::string study_uid = "1.2.826.0.1.3680043.8.498.2";
  int series_number = 1;
  std::string description = "sag T2";  // bytes as stored, in `charset`
  std::string charset;                  // SpecificCharacterSet (0008,0005); "" leaves it out
  std::vector<int> drop_slices;  // leave these slices out (a broken series)
};

inline std::string ds(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.6f", v);
  return b;
}

// `image` float32 [D,H,W] (integer values) on `g`; files folder/S<series number>_IM<k>.dcm (no
// extension when spec.folder ends in "noext").
inline void write_dicom_series(const NdArray& image, const Geometry& g,
                               const DicomSeriesSpec& spec) {
  using Image3 = itk::Image<short, 3>;
  using Image2 = itk::Image<short, 2>;
  const std::int64_t D = image.dim(0), H = image.dim(1), W = image.dim(2);
  auto img = Image3::New();
  Image3::RegionType region;
  region.SetSize({static_cast<itk::SizeValueType>(H), static_cast<itk::SizeValueType>(W),
                  static_cast<itk::SizeValueType>(D)});
  img->SetRegions(region);
  img->Allocate();
  const float* x = image.data<float>();
  short* p = img->GetBufferPointer();
  for (std::int64_t d = 0; d < D; ++d)
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t w = 0; w < W; ++w)
        p[(d * W + w) * H + h] = static_cast<short>(x[(d * H + h) * W + w]);
  std::filesystem::create_directories(spec.folder);
  const bool no_ext =
      spec.folder.size() >= 5 && spec.folder.substr(spec.folder.size() - 5) == "noext";
  auto io = itk::GDCMImageIO::New();
  io->KeepOriginalUIDOn();
  std::vector<itk::MetaDataDictionary*> dicts;
  std::vector<std::string> names;
  std::vector<std::unique_ptr<itk::MetaDataDictionary>> owned;
  auto set = [](itk::MetaDataDictionary& m, const std::string& tag, const std::string& v) {
    itk::EncapsulateMetaData<std::string>(m, tag, v);
  };
  std::vector<std::int64_t> kept;
  for (std::int64_t k = 0; k < D; ++k)
    if (std::find(spec.drop_slices.begin(), spec.drop_slices.end(), k) == spec.drop_slices.end())
      kept.push_back(k);
  for (std::int64_t k : kept) {
    owned.push_back(std::make_unique<itk::MetaDataDictionary>());
    auto& m = *owned.back();
    std::array<double, 3> pos = g.origin;
    for (int w = 0; w < 3; ++w)
      pos[w] += g.direction[w * 3 + 2] * g.spacing[2] * static_cast<double>(k);
    set(m, "0008|0060", "MR");
    set(m, "0028|0004", "MONOCHROME2");
    set(m, "0008|0016", "1.2.840.10008.5.1.4.1.1.4");
    set(m, "0008|0018", spec.series_uid + "." + std::to_string(k + 1));
    set(m, "0020|000d", spec.study_uid);
    set(m, "0020|0052", spec.study_uid + ".100");  // FrameOfReferenceUID
    set(m, "0020|000e", spec.series_uid);
    set(m, "0020|0011", std::to_string(spec.series_number));
    set(m, "0008|103e", spec.description);
    if (!spec.charset.empty()) set(m, "0008|0005", spec.charset);
    set(m, "0010|0010", "Phantom^Spine");
    set(m, "0010|0020", "PHANTOM1");
    set(m, "0020|0013", std::to_string(k + 1));
    set(m, "0020|0032", ds(pos[0]) + "\\" + ds(pos[1]) + "\\" + ds(pos[2]));
    set(m, "0020|0037",
        ds(g.direction[0]) + "\\" + ds(g.direction[3]) + "\\" + ds(g.direction[6]) + "\\" +
            ds(g.direction[1]) + "\\" + ds(g.direction[4]) + "\\" + ds(g.direction[7]));
    set(m, "0028|0030",
        ds(g.spacing[1]) + "\\" + ds(g.spacing[0]));  // row spacing \ column spacing
    set(m, "0018|0050", ds(g.spacing[2]));
    dicts.push_back(&m);
    names.push_back(spec.folder + "/S" + std::to_string(spec.series_number) + "_IM" +
                    std::to_string(k + 1) + (no_ext ? "" : ".dcm"));
  }
  // Only the kept slices: a volume of those slices, written one file each.
  auto part = Image3::New();
  Image3::RegionType pr;
  pr.SetSize({static_cast<itk::SizeValueType>(H), static_cast<itk::SizeValueType>(W),
              static_cast<itk::SizeValueType>(kept.size())});
  part->SetRegions(pr);
  part->Allocate();
  Image3::SpacingType sp;
  Image3::PointType origin;
  Image3::DirectionType dir;
  for (int a = 0; a < 3; ++a) {
    sp[a] = g.spacing[a];
    origin[a] = g.origin[a];
    for (int b = 0; b < 3; ++b) dir[a][b] = g.direction[a * 3 + b];
  }
  part->SetSpacing(sp);
  part->SetOrigin(origin);
  part->SetDirection(dir);
  for (std::size_t n = 0; n < kept.size(); ++n)
    std::copy(p + kept[n] * H * W, p + (kept[n] + 1) * H * W, part->GetBufferPointer() + n * H * W);
  auto writer = itk::ImageSeriesWriter<Image3, Image2>::New();
  writer->SetInput(part);
  writer->SetImageIO(io);
  writer->SetFileNames(names);
  writer->SetMetaDataDictionaryArray(&dicts);
  writer->Update();
}

}  // namespace spineparse::testing
