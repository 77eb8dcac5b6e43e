// Writing DICOM series from volumes at test time (ITK's GDCM writer, one MR slice per file along
// the volume's k axis; or DCMTK, one Enhanced MR object), so that tests need no stored DICOM files.
#pragma once

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcuid.h>
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

// One Enhanced MR object holding `image` (float32 [D,H,W], integer values) on `g`: the orientation
// and pixel spacing shared, each frame's position and rescale its own. Frames are stored in
// reverse slice order, and every third frame with slope 0.5 (stored 2 v), every third with
// intercept -100 (stored v + 100), so that a reader must place and rescale each frame.
struct EnhancedSpec {
  std::string path;
  std::string series_uid = "1.2.826.0.1.3680043.8.498.7";
  std::string description = "sag T2 enhanced";
  int same_position_as_first = -1;  // this frame (storage order) at the first one's position
  int no_position = -1;             // this frame without a PlanePositionSequence
  std::size_t cut_pixel_bytes = 0;  // pixel data this much shorter than the frames
  bool rle = false;                 // RLE Lossless (encapsulated) instead of uncompressed
};
inline void write_enhanced_mr(const NdArray& image, const Geometry& g, const EnhancedSpec& spec) {
  const std::int64_t D = image.dim(0), H = image.dim(1), W = image.dim(2);
  DcmFileFormat ff;
  DcmDataset& dset = *ff.getDataset();
  auto put = [&](DcmItem& item, const DcmTagKey& key, const std::string& v) {
    item.putAndInsertString(key, v.c_str());
  };
  put(dset, DCM_SOPClassUID, UID_EnhancedMRImageStorage);
  put(dset, DCM_SOPInstanceUID, spec.series_uid + ".1");
  put(dset, DCM_StudyInstanceUID, spec.series_uid + ".2");
  put(dset, DCM_SeriesInstanceUID, spec.series_uid);
  put(dset, DCM_FrameOfReferenceUID, spec.series_uid + ".3");
  put(dset, DCM_PatientName, "Phantom^Spine");
  put(dset, DCM_PatientID, "PHANTOM1");
  put(dset, DCM_Modality, "MR");
  put(dset, DCM_SeriesNumber, "7");
  put(dset, DCM_SeriesDescription, spec.description);
  put(dset, DCM_NumberOfFrames, std::to_string(D));
  dset.putAndInsertUint16(DCM_Rows, static_cast<Uint16>(W));
  dset.putAndInsertUint16(DCM_Columns, static_cast<Uint16>(H));
  dset.putAndInsertUint16(DCM_SamplesPerPixel, 1);
  put(dset, DCM_PhotometricInterpretation, "MONOCHROME2");
  dset.putAndInsertUint16(DCM_BitsAllocated, 16);
  dset.putAndInsertUint16(DCM_BitsStored, 16);
  dset.putAndInsertUint16(DCM_HighBit, 15);
  dset.putAndInsertUint16(DCM_PixelRepresentation, 1);
  DcmItem *shared = nullptr, *macro = nullptr;
  dset.findOrCreateSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0);
  shared->findOrCreateSequenceItem(DCM_PlaneOrientationSequence, macro, 0);
  put(*macro, DCM_ImageOrientationPatient,
      ds(g.direction[0]) + "\\" + ds(g.direction[3]) + "\\" + ds(g.direction[6]) + "\\" +
          ds(g.direction[1]) + "\\" + ds(g.direction[4]) + "\\" + ds(g.direction[7]));
  shared->findOrCreateSequenceItem(DCM_PixelMeasuresSequence, macro, 0);
  put(*macro, DCM_PixelSpacing, ds(g.spacing[1]) + "\\" + ds(g.spacing[0]));
  put(*macro, DCM_SliceThickness, ds(g.spacing[2]));
  std::vector<Uint16> pixels(static_cast<std::size_t>(D * H * W));
  for (std::int64_t f = 0; f < D; ++f) {
    const std::int64_t k = D - 1 - f;  // stored in reverse slice order
    const std::int64_t at = static_cast<int>(f) == spec.same_position_as_first ? D - 1 : k;
    DcmItem* frame = nullptr;
    dset.findOrCreateSequenceItem(DCM_PerFrameFunctionalGroupsSequence, frame,
                                  static_cast<int>(f));
    if (static_cast<int>(f) != spec.no_position) {
      std::array<double, 3> pos = g.origin;
      for (int w = 0; w < 3; ++w)
        pos[w] += g.direction[w * 3 + 2] * g.spacing[2] * static_cast<double>(at);
      frame->findOrCreateSequenceItem(DCM_PlanePositionSequence, macro, 0);
      put(*macro, DCM_ImagePositionPatient, ds(pos[0]) + "\\" + ds(pos[1]) + "\\" + ds(pos[2]));
    }
    const double slope = f % 3 == 1 ? 0.5 : 1.0, intercept = f % 3 == 2 ? -100.0 : 0.0;
    frame->findOrCreateSequenceItem(DCM_PixelValueTransformationSequence, macro, 0);
    put(*macro, DCM_RescaleSlope, ds(slope));
    put(*macro, DCM_RescaleIntercept, ds(intercept));
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t w = 0; w < W; ++w) {
        const double v = image.data<float>()[(k * H + h) * W + w];
        pixels[static_cast<std::size_t>((f * W + w) * H + h)] =
            static_cast<Uint16>(static_cast<Sint16>((v - intercept) / slope));
      }
  }
  dset.putAndInsertUint16Array(DCM_PixelData, pixels.data(),
                               static_cast<unsigned long>(pixels.size() - spec.cut_pixel_bytes / 2));
  std::filesystem::create_directories(std::filesystem::path(spec.path).parent_path());
  E_TransferSyntax xfer = EXS_LittleEndianExplicit;
  if (spec.rle) {
    DcmRLEEncoderRegistration::registerCodecs();
    const bool encoded = dset.chooseRepresentation(EXS_RLELossless, nullptr).good() &&
                         dset.canWriteXfer(EXS_RLELossless);
    DcmRLEEncoderRegistration::cleanup();
    if (!encoded) throw std::runtime_error("cannot RLE-encode " + spec.path);
    xfer = EXS_RLELossless;
  }
  if (ff.saveFile(spec.path.c_str(), xfer).bad())
    throw std::runtime_error("cannot write " + spec.path);
}

}  // namespace spineparse::testing
