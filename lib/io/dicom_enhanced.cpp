#include "io/dicom_enhanced.hpp"

#include <dcmtk/config/osconfig.h>  // before any other DCMTK header
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/oflog/oflog.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <vector>

#include "io/dicom_slices.hpp"

namespace spineparse::io {

namespace {

// DCMTK's log quiet (it would note on the terminal that parsing stopped at the pixel data);
// failures are reported by what the calls return. Its setup is not thread-safe: once.
void quiet_dcmtk() {
  static std::once_flag once;
  std::call_once(once, [] { OFLog::configure(OFLogger::FATAL_LOG_LEVEL); });
}

// Values of one attribute inside a functional group macro (`group`, a sequence of one item): in the
// frame's own item first, then in the shared one (PS3.3 C.7.6.16: a macro is in one of the two).
class FunctionalGroups {
 public:
  // Throws when the per-frame sequence does not hold one item per frame.
  FunctionalGroups(DcmDataset& ds, long frames, const std::string& what) {
    ds.findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, shared_, 0);
    DcmSequenceOfItems* per_frame = nullptr;
    const unsigned long items =
        ds.findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, per_frame).good() && per_frame
            ? per_frame->card()
            : 0;
    if (items != static_cast<unsigned long>(frames))
      throw std::runtime_error(what + ": NumberOfFrames " + std::to_string(frames) + " but " +
                               std::to_string(items) + " per-frame functional groups");
    for (long i = 0; i < frames; ++i) {
      DcmItem* item = nullptr;
      ds.findAndGetSequenceItem(DCM_PerFrameFunctionalGroupsSequence, item, static_cast<int>(i));
      per_frame_.push_back(item);
    }
  }
  // n decimal values of `key` in `group` for frame i, or nothing.
  std::optional<std::vector<double>> values(long i, const DcmTagKey& group, const DcmTagKey& key,
                                            unsigned n) const {
    for (DcmItem* fg : {per_frame_[static_cast<std::size_t>(i)], shared_}) {
      DcmItem* macro = nullptr;
      if (!fg || fg->findAndGetSequenceItem(group, macro, 0).bad() || !macro) continue;
      std::vector<double> v(n);
      bool ok = true;
      for (unsigned k = 0; k < n && ok; ++k)
        ok = macro->findAndGetFloat64(key, v[k], k).good() && std::isfinite(v[k]);
      if (ok) return v;
    }
    return std::nullopt;
  }

 private:
  DcmItem* shared_ = nullptr;
  std::vector<DcmItem*> per_frame_;
};

long integer(DcmDataset& ds, const DcmTagKey& key, long fallback = -1) {
  Sint32 v32 = 0;
  if (ds.findAndGetSint32(key, v32).good()) return v32;
  Uint16 v16 = 0;
  if (ds.findAndGetUint16(key, v16).good()) return v16;
  return fallback;
}

// The stored values of the pixel data (8 or 16 bits, signed or not), read in place; its length
// checked against the `n` values the frames need.
class StoredPixels {
 public:
  StoredPixels(DcmDataset& ds, std::size_t n, int bits, bool is_signed, const std::string& what)
      : is_signed_(is_signed) {
    unsigned long count = 0;
    const bool found = bits == 8
                           ? ds.findAndGetUint8Array(DCM_PixelData, p8_, &count).good() && p8_
                           : ds.findAndGetUint16Array(DCM_PixelData, p16_, &count).good() && p16_;
    if (!found || count < n)
      throw std::runtime_error(what + ": pixel data shorter than Rows x Columns x NumberOfFrames");
  }
  float operator[](std::size_t i) const {
    if (p8_) return is_signed_ ? static_cast<Sint8>(p8_[i]) : p8_[i];
    return is_signed_ ? static_cast<Sint16>(p16_[i]) : p16_[i];
  }

 private:
  const Uint8* p8_ = nullptr;
  const Uint16* p16_ = nullptr;
  bool is_signed_;
};

// Decompresses RLE in place; uncompressed data is left as it is; anything else is refused.
void uncompressed(DcmFileFormat& ff, const std::string& what) {
  DcmDataset& ds = *ff.getDataset();
  const DcmXfer xfer(ds.getOriginalXfer());
  if (!xfer.isEncapsulated()) return;
  struct RleDecoder {  // registered once, on first need; unregistered at exit
    RleDecoder() { DcmRLEDecoderRegistration::registerCodecs(); }
    ~RleDecoder() { DcmRLEDecoderRegistration::cleanup(); }
  };
  static const RleDecoder rle;
  if (ds.chooseRepresentation(EXS_LittleEndianExplicit, nullptr).bad() ||
      !ds.canWriteXfer(EXS_LittleEndianExplicit))
    throw std::runtime_error(what + ": pixel data compressed as " + xfer.getXferName() +
                             ", which this reader does not decode (uncompressed and RLE are "
                             "read; dcmdjpeg or gdcmconv --raw decompress it)");
}

}  // namespace

bool is_enhanced_mr_class(const std::string& uid) {
  return uid == UID_EnhancedMRImageStorage || uid == UID_LegacyConvertedEnhancedMRImageStorage;
}

bool is_enhanced_mr_file(const std::string& path) {
  quiet_dcmtk();
  DcmFileFormat ff;  // the header only: a damaged pixel data is read_enhanced_mr's to report
  if (ff.loadFileUntilTag(path.c_str(), EXS_Unknown, EGL_noChange, 256, ERM_autoDetect,
                          DCM_PixelData)
          .bad())
    return false;
  OFString uid;
  return ff.getDataset()->findAndGetOFString(DCM_SOPClassUID, uid).good() &&
         is_enhanced_mr_class(uid.c_str());
}

std::vector<std::array<double, 3>> enhanced_frame_positions(const std::string& file) {
  quiet_dcmtk();
  DcmFileFormat ff;
  if (const OFCondition c = ff.loadFile(file.c_str(), EXS_Unknown, EGL_noChange, 256); c.bad())
    throw std::runtime_error(file + ": not readable as DICOM (" + c.text() + ")");
  DcmDataset& ds = *ff.getDataset();
  const long frames = integer(ds, DCM_NumberOfFrames, 1);
  const FunctionalGroups fg(ds, frames, file);
  std::vector<std::array<double, 3>> out;
  for (long i = 0; i < frames; ++i) {
    const auto v = fg.values(i, DCM_PlanePositionSequence, DCM_ImagePositionPatient, 3);
    if (!v) throw std::runtime_error(file + ": no ImagePositionPatient for frame " +
                                     std::to_string(i + 1));
    out.push_back({(*v)[0], (*v)[1], (*v)[2]});
  }
  return out;
}

Volume read_enhanced_mr(const std::string& file, const ReadLimits& limits) {
  const std::string what = "Enhanced MR object " + file;
  quiet_dcmtk();
  DcmFileFormat ff;
  if (const OFCondition c = ff.loadFile(file.c_str()); c.bad())
    throw std::runtime_error(what + ": not readable as DICOM (" + c.text() + ")");
  DcmDataset& ds = *ff.getDataset();
  const long rows = integer(ds, DCM_Rows), cols = integer(ds, DCM_Columns);
  const long frames = integer(ds, DCM_NumberOfFrames, 1);
  const long bits = integer(ds, DCM_BitsAllocated), samples = integer(ds, DCM_SamplesPerPixel, 1);
  if (rows <= 0 || cols <= 0 || frames <= 0)
    throw std::runtime_error(what + ": no Rows, Columns or NumberOfFrames");
  if ((bits != 8 && bits != 16) || samples != 1)
    throw std::runtime_error(what + ": " + std::to_string(samples) + " sample(s) of " +
                             std::to_string(bits) + " bits per pixel; one of 8 or 16 is read");
  if (frames < 3) throw std::runtime_error(what + ": " + std::to_string(frames) +
                                           " frame(s): not a 3-D volume");
  if (limits.max_slices > 0 && frames > limits.max_slices)
    throw std::runtime_error(what + ": " + std::to_string(frames) +
                             " frames, over the limit max_slices=" +
                             std::to_string(limits.max_slices));
  const std::int64_t voxels = static_cast<std::int64_t>(rows) * cols * frames;
  if (limits.max_voxels > 0 && voxels > limits.max_voxels)
    throw std::runtime_error(what + ": " + std::to_string(voxels) +
                             " voxels, over the limit max_voxels=" +
                             std::to_string(limits.max_voxels));

  // Where each frame lies, from the functional groups; then the frames in slice order.
  const FunctionalGroups fg(ds, frames, what);
  std::vector<Placed> placed;
  std::map<std::string, long> frame_of;
  for (long i = 0; i < frames; ++i) {
    Placed p{"frame " + std::to_string(i + 1)};
    if (auto v = fg.values(i, DCM_PlanePositionSequence, DCM_ImagePositionPatient, 3))
      p.has_position = true, std::copy(v->begin(), v->end(), p.position.begin());
    if (auto v = fg.values(i, DCM_PlaneOrientationSequence, DCM_ImageOrientationPatient, 6))
      p.has_orientation = true, std::copy(v->begin(), v->end(), p.orientation.begin());
    frame_of[p.file] = i;
    placed.push_back(p);
  }
  const auto slices = slices_in_order(placed, what);
  const auto spacing = fg.values(0, DCM_PixelMeasuresSequence, DCM_PixelSpacing, 2);

  const auto& o = placed[static_cast<std::size_t>(frame_of.at(slices[0].file))].orientation;
  const double row_len = std::hypot(o[0], o[1], o[2]), col_len = std::hypot(o[3], o[4], o[5]);
  if (std::abs(row_len - 1) > 1e-3 || std::abs(col_len - 1) > 1e-3 ||
      std::abs(o[0] * o[3] + o[1] * o[4] + o[2] * o[5]) > 1e-3)
    throw std::runtime_error(what + ": ImageOrientationPatient is not two orthogonal unit vectors");

  uncompressed(ff, what);
  const StoredPixels stored(ds, static_cast<std::size_t>(voxels), static_cast<int>(bits),
                            integer(ds, DCM_PixelRepresentation, 0) == 1, what);

  // [D, H, W] as read_dicom_series gives it: h along a row (the column index), w down the rows.
  const std::int64_t D = frames, H = cols, W = rows, plane = H * W;
  auto arr = NdArray::make<float>({D, H, W});
  float* out = arr->data<float>();
  for (std::int64_t d = 0; d < D; ++d) {
    const long f = frame_of.at(slices[static_cast<std::size_t>(d)].file);
    const auto slope = fg.values(f, DCM_PixelValueTransformationSequence, DCM_RescaleSlope, 1);
    const auto icept = fg.values(f, DCM_PixelValueTransformationSequence, DCM_RescaleIntercept, 1);
    const double a = slope ? (*slope)[0] : 1.0, b = icept ? (*icept)[0] : 0.0;
    const auto frame = static_cast<std::size_t>(f * plane);
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t w = 0; w < W; ++w)
        out[(d * H + h) * W + w] =
            static_cast<float>(a * stored[frame + static_cast<std::size_t>(w * H + h)] + b);
  }

  Volume v;
  const std::array<double, 3> n{o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5],
                                o[0] * o[4] - o[1] * o[3]};
  const auto& first = placed[static_cast<std::size_t>(frame_of.at(slices[0].file))].position;
  const double gap = (slices.back().at - slices.front().at) / static_cast<double>(D - 1);
  v.geometry.spacing = {spacing ? (*spacing)[1] : 1.0, spacing ? (*spacing)[0] : 1.0, gap};
  if (!spacing || (*spacing)[0] <= 0 || (*spacing)[1] <= 0) {
    v.geometry.spacing[0] = v.geometry.spacing[1] = 1.0;
    v.warnings.push_back(what + ": no PixelSpacing in the functional groups; 1 mm is used");
  }
  for (int i = 0; i < 3; ++i) {
    v.geometry.origin[i] = first[i];
    v.geometry.direction[i * 3 + 0] = o[i];
    v.geometry.direction[i * 3 + 1] = o[3 + i];
    v.geometry.direction[i * 3 + 2] = n[i];
  }
  v.data = arr;
  v.info.path = file;
  v.info.dimensions = 3;
  v.info.size = {H, W, D};
  v.info.geometry = v.geometry;
  return v;
}

}  // namespace spineparse::io
