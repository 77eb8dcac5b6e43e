#include "io/dicom_seg.hpp"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmfg/fgfracon.h>
#include <dcmtk/dcmfg/fgpixmsr.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmiod/iodreferences.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>
#include <dcmtk/oflog/oflog.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>

#include "io/dicom_enhanced.hpp"
#include "spine/labels.hpp"
#include "spineparse/files.hpp"

namespace spineparse::io {

namespace {

void check(const OFCondition& c, const std::string& what) {
  if (c.bad()) throw std::runtime_error(what + ": " + c.text());
}

std::string ds(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

CodeSequenceMacro property_type(int label) {
  const SnomedCode c = snomed_code(label);
  return CodeSequenceMacro(c.value, "SCT", c.meaning);
}

struct SourceSlice {
  std::string sop_class, sop_instance;
  std::string patient_id, study_uid, series_uid;
  Uint16 frame = 0;  // the frame of a multi-frame source (1-based; 0: a single-frame image)
};

SourceSlice source_of(const std::string& file) {
  DcmFileFormat f;
  check(f.loadFile(file.c_str()), "cannot read " + file);
  SourceSlice s;
  OFString v;
  f.getDataset()->findAndGetOFString(DCM_SOPClassUID, v);
  s.sop_class = v.c_str();
  f.getDataset()->findAndGetOFString(DCM_SOPInstanceUID, v);
  s.sop_instance = v.c_str();
  if (s.sop_instance.empty()) throw std::runtime_error(file + " has no SOPInstanceUID");
  f.getDataset()->findAndGetOFString(DCM_PatientID, v);
  s.patient_id = v.c_str();
  f.getDataset()->findAndGetOFString(DCM_StudyInstanceUID, v);
  s.study_uid = v.c_str();
  f.getDataset()->findAndGetOFString(DCM_SeriesInstanceUID, v);
  s.series_uid = v.c_str();
  return s;
}

// The Common Instance Reference module: the source series and its images, as a PACS or viewer
// finds the series a segmentation belongs to (Referenced Series Sequence).
void add_series_reference(DcmSegmentation& seg, const std::string& path,
                          const std::vector<SourceSlice>& sources) {
  IODReferences refs;
  std::set<std::string> seen;
  for (const auto& s : sources)
    if (seen.insert(s.sop_instance).second)
      refs.add(new IODImageReference(s.patient_id.c_str(), s.study_uid.c_str(),
                                     s.series_uid.c_str(), s.sop_instance.c_str(),
                                     s.sop_class.c_str()));
  if (seg.getCommonInstanceReference().addReferences(refs, sources.front().study_uid.c_str()) == 0)
    throw std::runtime_error(path + ": the source series cannot be referenced");
}

// The source image of each slice d: file d of a classic series, or the frame of one Enhanced MR
// object that lies at slice d's position.
std::vector<SourceSlice> sources_of(const std::string& path, const std::vector<std::string>& files,
                                    const Geometry& g, std::int64_t D) {
  std::vector<SourceSlice> out;
  if (files.size() == 1 && D > 1 && is_enhanced_mr_file(files[0])) {
    const SourceSlice object = source_of(files[0]);
    const auto at = enhanced_frame_positions(files[0]);
    for (std::int64_t d = 0; d < D; ++d) {
      std::size_t best = 0;
      double best_mm = 1e300;
      for (std::size_t k = 0; k < at.size(); ++k) {
        double mm = 0;
        for (int w = 0; w < 3; ++w) {
          const double p = g.origin[w] + g.direction[w * 3 + 2] * g.spacing[2] * static_cast<double>(d);
          mm += (at[k][w] - p) * (at[k][w] - p);
        }
        if (mm < best_mm) best_mm = mm, best = k;
      }
      if (std::sqrt(best_mm) > 0.25 * g.spacing[2])
        throw std::runtime_error(path + ": no frame of " + files[0] + " lies at slice " +
                                 std::to_string(d + 1));
      out.push_back(object);
      out.back().frame = static_cast<Uint16>(best + 1);
    }
    return out;
  }
  if (static_cast<std::int64_t>(files.size()) != D)
    throw std::runtime_error(path + ": " + std::to_string(D) + " slices but " +
                             std::to_string(files.size()) + " source images");
  for (const auto& f : files) out.push_back(source_of(f));
  return out;
}

// The segmentation object over the series: geometry shared by every frame and the dimension
// index (segment, slice position).
std::unique_ptr<DcmSegmentation> new_segmentation(const std::string& path, const Geometry& g,
                                                  std::int64_t H, std::int64_t W,
                                                  const std::string& first_source) {
  // Rows run along the image's second axis (W), columns along its first (H).
  IODGeneralEquipmentModule::EquipmentInfo eq("spineparse", "spineparse", "0", "0.1.0");
  ContentIdentificationMacro ci("1", "SPINE", "SpineParseNet: vertebrae and discs", "spineparse");
  DcmSegmentation* raw = nullptr;
  check(DcmSegmentation::createBinarySegmentation(raw, static_cast<Uint16>(W),
                                                  static_cast<Uint16>(H), eq, ci),
        path);
  std::unique_ptr<DcmSegmentation> seg(raw);
  check(seg->importFromSourceImage(first_source.c_str()), path + ": " + first_source);
  seg->getSeries().setSeriesDescription("spineparse segmentation");
  seg->getSeries().setSeriesNumber("9901");
  std::unique_ptr<FGPlaneOrientationPatient> orientation(FGPlaneOrientationPatient::createMinimal(
      ds(g.direction[0]).c_str(), ds(g.direction[3]).c_str(), ds(g.direction[6]).c_str(),
      ds(g.direction[1]).c_str(), ds(g.direction[4]).c_str(), ds(g.direction[7]).c_str()));
  check(seg->addForAllFrames(*orientation), path);
  FGPixelMeasures measures;
  measures.setPixelSpacing((ds(g.spacing[1]) + "\\" + ds(g.spacing[0])).c_str());
  measures.setSliceThickness(ds(g.spacing[2]).c_str());
  measures.setSpacingBetweenSlices(ds(g.spacing[2]).c_str());
  check(seg->addForAllFrames(measures), path);
  char uid[100];
  dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT);
  IODMultiframeDimensionModule& dims = seg->getDimensions();
  check(dims.addDimensionIndex(DCM_ReferencedSegmentNumber, uid, DCM_SegmentIdentificationSequence,
                               "Segment Number"),
        path);
  check(dims.addDimensionIndex(DCM_ImagePositionPatient, uid, DCM_PlanePositionSequence,
                               "Image Position Patient"),
        path);
  return seg;
}

// Adds frame `frame` (slice d of segment `number`) with its position and its source image.
void add_frame(DcmSegmentation& seg, const std::string& path, const Geometry& g, std::int64_t d,
               Uint16 number, const SourceSlice& src, std::vector<Uint8>& frame) {
  double p[3];
  for (int w = 0; w < 3; ++w)
    p[w] = g.origin[w] + g.direction[w * 3 + 2] * g.spacing[2] * static_cast<double>(d);
  std::unique_ptr<FGPlanePosPatient> position(
      FGPlanePosPatient::createMinimal(ds(p[0]).c_str(), ds(p[1]).c_str(), ds(p[2]).c_str()));
  FGFrameContent content;
  content.setDimensionIndexValues(number, 0);
  content.setDimensionIndexValues(static_cast<Uint32>(d + 1), 1);
  ImageSOPInstanceReferenceMacro* raw = nullptr;
  check(ImageSOPInstanceReferenceMacro::create(src.sop_class.c_str(), src.sop_instance.c_str(),
                                               raw),
        path);
  std::unique_ptr<ImageSOPInstanceReferenceMacro> ref(raw);
  if (src.frame) check(ref->addReferencedFrameNumber(src.frame), path + ": frame reference");
  OFVector<ImageSOPInstanceReferenceMacro> refs;
  refs.push_back(*ref);
  std::unique_ptr<FGDerivationImage> derivation(
      DcmSegmentation::createDerivationImageFG(refs, "Segmentation by spineparse"));
  OFVector<FGBase*> groups;
  groups.push_back(position.get());
  groups.push_back(&content);
  if (derivation) groups.push_back(derivation.get());
  check(seg.addFrame(frame.data(), number, groups), path);
}

}  // namespace

void write_dicom_seg(const std::string& path, const NdArray& labels, const Geometry& g,
                     const std::vector<std::string>& source_files) {
  static std::once_flag quiet;  // DCMTK's logger setup is not thread-safe: once
  std::call_once(quiet, [] { OFLog::configure(OFLogger::FATAL_LOG_LEVEL); });  // failures throw
  const std::int64_t D = labels.dim(0), H = labels.dim(1), W = labels.dim(2);
  const std::vector<SourceSlice> sources = sources_of(path, source_files, g, D);
  auto seg = new_segmentation(path, g, H, W, source_files.front());
  const auto* l = labels.data<std::uint8_t>();
  std::vector<Uint8> frame(static_cast<std::size_t>(H * W));
  for (int label = 1; label < kNumClasses; ++label) {
    bool present = false;
    for (std::int64_t i = 0; i < labels.numel() && !present; ++i) present = l[i] == label;
    if (!present) continue;
    DcmSegment* segment = nullptr;
    check(DcmSegment::create(segment, structure_name(label),
                             CodeSequenceMacro("91723000", "SCT", "Anatomical Structure"),
                             property_type(label), DcmSegTypes::SAT_AUTOMATIC, "SpineParseNet"),
          path);
    Uint16 number = 0;
    check(seg->addSegment(segment, number), path);
    for (std::int64_t d = 0; d < D; ++d) {
      bool any = false;
      for (std::int64_t r = 0; r < W; ++r)  // frame row r = image W index, column c = H index
        for (std::int64_t c = 0; c < H; ++c) {
          const bool on = l[(d * H + c) * W + r] == label;
          frame[static_cast<std::size_t>(r * H + c)] = on;
          any |= on;
        }
      if (any) add_frame(*seg, path, g, d, number, sources[static_cast<std::size_t>(d)], frame);
    }
  }
  add_series_reference(*seg, path, sources);
  const std::string tmp = temp_path_for(path);
  check(seg->saveFile(tmp.c_str(), EXS_LittleEndianExplicit), "cannot write " + path);
  commit_file(tmp, path);
}

}  // namespace spineparse::io
