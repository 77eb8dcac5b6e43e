// DICOM series: found at any depth, read with their geometry, broken ones refused with reasons.
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmfg/fgseg.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>
#include <dcmtk/dcmseg/segutils.h>
#include <gmock/gmock.h>

#include <set>

#include "dicom_fixtures.hpp"
#include "io/dataset.hpp"
#include "io/dicom.hpp"
#include "io/dicom_check.hpp"
#include "io/dicom_enhanced.hpp"
#include "io/dicom_seg.hpp"
#include "io/orientation.hpp"
#include "io/synth.hpp"
#include "spine/labels.hpp"
#include "spineparse/files.hpp"
#include "test_util.hpp"

using namespace spineparse;
using namespace spineparse::io;
using spineparse::testing::DicomSeriesSpec;
using spineparse::testing::TempDir;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {
// A synthetic case stored in `orientation` (k stays the sagittal slice axis).
Phantom phantom(const std::string& orientation) {
  SynthOptions o;
  o.min_size = 64;
  o.max_size = 80;
  Phantom ph = make_phantom(o, 1);
  const Reorientation r = plan_reorientation(axis_codes(ph.geometry), orientation);
  const std::array<std::int64_t, 3> ijk{ph.image->dim(1), ph.image->dim(2), ph.image->dim(0)};
  ph.geometry = reorient(ph.geometry, ijk, r);
  ph.image = reorient(*ph.image, r);
  return ph;
}
// A phantom's int16 image as the float32 volume the DICOM writers take.
NdArray as_float(const NdArray& image) {
  NdArray img(DType::kFloat32, image.shape());
  for (std::int64_t i = 0; i < img.numel(); ++i)
    img.data<float>()[i] = static_cast<float>(image.data<std::int16_t>()[i]);
  return img;
}
std::vector<std::string> files_of(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().string());
  return out;
}
}  // namespace

TEST(Dicom, SeriesInAnyInPlaneOrientationReadBackAsTheVolume) {
  for (const std::string o : {"PIL", "IPL", "ASR"}) {
    TempDir d;
    const Phantom ph = phantom(o);
    const NdArray img = as_float(*ph.image);
    spineparse::testing::write_dicom_series(img, ph.geometry, {(d / "study/sag").string()});
    const auto found = find_dicom_series(d.str());
    ASSERT_EQ(found.size(), 1u) << o;
    EXPECT_EQ(found[0].description, "sag T2");
    EXPECT_EQ(found[0].not_a_volume, "");
    const Volume v = read_dicom_series(found[0].files);
    // Slices come in order along the normal of their rows and columns, which may run against
    // the volume's k: the same voxels in the same places, up to that flip.
    const std::string got = axis_codes(v.geometry);
    EXPECT_EQ(got.substr(0, 2), o.substr(0, 2));
    const Reorientation r = plan_reorientation(got, o);
    const std::array<std::int64_t, 3> ijk{v.data->dim(1), v.data->dim(2), v.data->dim(0)};
    const auto back = reorient(*v.data, r);
    ASSERT_EQ(back->shape(), img.shape()) << o;
    EXPECT_TRUE(reorient(v.geometry, ijk, r).same_as(ph.geometry, 1e-4))
        << o << " " << v.geometry.describe() << " vs " << ph.geometry.describe();
    EXPECT_EQ(std::memcmp(back->raw(), img.raw(), img.nbytes()), 0) << o;
  }
}

// An Enhanced MR object (one multi-frame file; frames stored in reverse order, each with its own
// position and rescale) is one series and reads back as the volume it holds; a dataset lists it as
// a case.
TEST(Dicom, AnEnhancedMrObjectReadsBackAsTheVolume) {
  TempDir d;
  const Phantom ph = phantom("PIL");
  const NdArray img = as_float(*ph.image);
  spineparse::testing::write_enhanced_mr(img, ph.geometry, {(d / "study/enh/obj.dcm").string()});
  const auto found = find_dicom_series(d.str());
  ASSERT_EQ(found.size(), 1u);
  EXPECT_TRUE(found[0].enhanced);
  EXPECT_EQ(found[0].not_a_volume, "");
  EXPECT_EQ(found[0].description, "sag T2 enhanced");
  const Volume v = read_dicom_series(found[0].files);
  const Reorientation r = plan_reorientation(axis_codes(v.geometry), "PIL");
  const std::array<std::int64_t, 3> ijk{v.data->dim(1), v.data->dim(2), v.data->dim(0)};
  const auto back = reorient(*v.data, r);
  ASSERT_EQ(back->shape(), img.shape());
  EXPECT_TRUE(reorient(v.geometry, ijk, r).same_as(ph.geometry, 1e-4))
      << v.geometry.describe() << " vs " << ph.geometry.describe();
  EXPECT_EQ(std::memcmp(back->raw(), img.raw(), img.nbytes()), 0);
  const auto seeds = list_dataset(d.str(), "flat");
  ASSERT_EQ(seeds.size(), 1u);
  EXPECT_EQ(seeds[0].attrs.count("skipped"), 0u) << seeds[0].attrs.at("skipped");
  // The same object RLE-compressed reads the same.
  spineparse::testing::EnhancedSpec rle{(d / "rle.dcm").string()};
  rle.rle = true;
  spineparse::testing::write_enhanced_mr(img, ph.geometry, rle);
  const Volume w = read_dicom_series({rle.path});
  ASSERT_EQ(w.data->shape(), v.data->shape());
  EXPECT_EQ(std::memcmp(w.data->raw(), v.data->raw(), v.data->nbytes()), 0);
}

// The DICOM-SEG over an Enhanced MR object references the object's frame at each slice.
TEST(Dicom, ASegmentationOfAnEnhancedMrObjectReferencesItsFrames) {
  TempDir d;
  const Phantom ph = phantom("PIL");
  const NdArray img = as_float(*ph.image);
  const std::string object = (d / "obj.dcm").string();
  spineparse::testing::write_enhanced_mr(img, ph.geometry, {object});
  const Volume v = read_dicom_series({object});
  const auto labels =
      reorient(*ph.mask, plan_reorientation(axis_codes(ph.geometry), axis_codes(v.geometry)));
  const std::string path = (d / "seg.dcm").string();
  write_dicom_seg(path, *labels, v.geometry, {object});
  DcmSegmentation* raw = nullptr;
  ASSERT_TRUE(DcmSegmentation::loadFile(path.c_str(), raw).good());
  std::unique_ptr<DcmSegmentation> seg(raw);
  const auto at = enhanced_frame_positions(object);
  FGInterface& fg = seg->getFunctionalGroups();
  ASSERT_GT(seg->getNumberOfFrames(), 0u);
  for (Uint32 f = 0; f < seg->getNumberOfFrames(); ++f) {
    auto* pos = dynamic_cast<FGPlanePosPatient*>(fg.get(f, DcmFGTypes::EFG_PLANEPOSPATIENT));
    auto* der = dynamic_cast<FGDerivationImage*>(fg.get(f, DcmFGTypes::EFG_DERIVATIONIMAGE));
    ASSERT_TRUE(pos && der) << f;
    Float64 x, y, z;
    ASSERT_TRUE(pos->getImagePositionPatient(x, y, z).good());
    OFVector<Uint16> frames;
    der->getDerivationImageItems()[0]
        ->getSourceImageItems()[0]
        ->getImageSOPInstanceReference()
        .getReferencedFrameNumber(frames);
    ASSERT_EQ(frames.size(), 1u) << f;
    ASSERT_GE(frames[0], 1);
    ASSERT_LE(frames[0], at.size());
    const auto& p = at[frames[0] - 1u];
    EXPECT_NEAR(p[0], x, 1e-3) << f;
    EXPECT_NEAR(p[1], y, 1e-3) << f;
    EXPECT_NEAR(p[2], z, 1e-3) << f;
  }
}

TEST(Dicom, BrokenEnhancedMrObjectsFailWithTheirReason) {
  TempDir d;
  const Phantom ph = phantom("PIL");
  const NdArray img = as_float(*ph.image);
  struct Broken {
    spineparse::testing::EnhancedSpec spec;
    std::string reason;
  };
  std::vector<Broken> cases(3);
  cases[0].spec.same_position_as_first = 2, cases[0].reason = "two slices at one position";
  cases[1].spec.no_position = 1, cases[1].reason = "no ImagePositionPatient in frame 2";
  cases[2].spec.cut_pixel_bytes = 512, cases[2].reason = "pixel data shorter than";
  for (auto& c : cases) {
    c.spec.path = (d / (std::to_string(&c - cases.data()) + ".dcm")).string();
    spineparse::testing::write_enhanced_mr(img, ph.geometry, c.spec);
    EXPECT_THAT([&] { read_dicom_series({c.spec.path}); },
                ::testing::ThrowsMessage<std::runtime_error>(::testing::AllOf(
                    HasSubstr("Enhanced MR object " + c.spec.path), HasSubstr(c.reason))));
  }
}

// A scanner's own Enhanced MR object (Siemens XA10, tests/data/dcm_qa_enh) reads as dcm2niix
// reads it: the same voxels in the same places.
TEST(Dicom, AScannersEnhancedMrObjectReadsAsDcm2niixReadsIt) {
  const std::string dir = spineparse::testing::source_dir() + "/tests/data/dcm_qa_enh";
  const auto found = find_dicom_series(dir);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].description, "REST1 w SMS PF7-8");
  const Volume v = read_dicom_series(found[0].files);
  const Volume ref = read_image(dir + "/Siemens_REST1_w_SMS_PF7-8_6_vol1.nii.gz");
  const std::string codes = axis_codes(ref.geometry);
  const Reorientation r = plan_reorientation(axis_codes(v.geometry), codes);
  const std::array<std::int64_t, 3> ijk{v.data->dim(1), v.data->dim(2), v.data->dim(0)};
  const auto back = reorient(*v.data, r);
  ASSERT_EQ(back->shape(), ref.data->shape()) << codes;
  EXPECT_TRUE(reorient(v.geometry, ijk, r).same_as(ref.geometry, 1e-3))
      << reorient(v.geometry, ijk, r).describe() << " vs " << ref.geometry.describe();
  EXPECT_EQ(std::memcmp(back->raw(), ref.data->raw(), ref.data->nbytes()), 0);
}

TEST(Dicom, SeriesTextInItsCharacterSetComesOutAsUtf8) {
  const Phantom ph = phantom("PIL");
  const NdArray img = as_float(*ph.image);
  struct Kind {
    std::string charset, stored;
  };
  // "Wirbelsäule" stored in Latin-1, in UTF-8, and (no character set) plain ASCII.
  for (const Kind& k : {Kind{"ISO_IR 100", "Wirbels\xe4ule"},
                        Kind{"ISO_IR 192", "Wirbels\xc3\xa4ule"}, Kind{"", "Wirbelsaeule"}}) {
    TempDir d;
    spineparse::testing::DicomSeriesSpec spec{(d / "sag").string()};
    spec.description = k.stored;
    spec.charset = k.charset;
    spineparse::testing::write_dicom_series(img, ph.geometry, spec);
    const auto found = find_dicom_series(d.str());
    ASSERT_EQ(found.size(), 1u) << k.charset;
    EXPECT_EQ(found[0].description, k.charset.empty() ? "Wirbelsaeule" : "Wirbels\xc3\xa4ule")
        << k.charset;
  }
}

TEST(Dicom, BrokenSeriesFailWithTheirReason) {
  TempDir d;
  const Phantom ph = phantom("PIL");
  const NdArray img = as_float(*ph.image);
  DicomSeriesSpec gap{(d / "gap").string(), "1.2.3.1"};
  gap.drop_slices = {5};
  spineparse::testing::write_dicom_series(img, ph.geometry, gap);
  EXPECT_THAT([&] { read_dicom_series(files_of(gap.folder)); },
              ::testing::ThrowsMessage<std::runtime_error>(HasSubstr("uneven slice spacing")));
  // The same slice twice (a copy under another name).
  DicomSeriesSpec twice{(d / "twice").string(), "1.2.3.2"};
  spineparse::testing::write_dicom_series(img, ph.geometry, twice);
  fs::copy_file(twice.folder + "/S1_IM3.dcm", twice.folder + "/S1_IM3copy.dcm");
  EXPECT_THAT(
      [&] { read_dicom_series(files_of(twice.folder)); },
      ::testing::ThrowsMessage<std::runtime_error>(HasSubstr("two slices at one position")));
  // One slice of another orientation.
  DicomSeriesSpec mixed{(d / "mixed").string(), "1.2.3.3"};
  spineparse::testing::write_dicom_series(img, ph.geometry, mixed);
  const Phantom other = phantom("IPL");
  NdArray one(DType::kFloat32, {1, other.image->dim(1), other.image->dim(2)});
  for (std::int64_t i = 0; i < one.numel(); ++i)
    one.data<float>()[i] = static_cast<float>(other.image->data<std::int16_t>()[i]);
  spineparse::testing::write_dicom_series(one, other.geometry,
                                          {(d / "mixed_one").string(), "1.2.3.3"});
  fs::copy_file(d / "mixed_one/S1_IM1.dcm", d / "mixed/IMX.dcm");
  std::vector<std::string> files = files_of(mixed.folder);
  EXPECT_THAT([&] { read_dicom_series(files); },
              ::testing::ThrowsMessage<std::runtime_error>(HasSubstr("different orientations")));
}

TEST(Dicom, DatasetListsSeriesWithIdsAndSkipsWhatIsNotAVolume) {
  TempDir d;
  const Phantom ph = phantom("PIL");
  const NdArray img = as_float(*ph.image);
  // patientA/: one series (id: the folder); study/: two series in one folder, files without
  // extension; a single-image localizer; a NIfTI case beside them.
  spineparse::testing::write_dicom_series(img, ph.geometry,
                                          {(d / "patientA").string(), "1.9.1", "1.8", 2, "T1 sag"});
  spineparse::testing::write_dicom_series(
      img, ph.geometry, {(d / "study/noext").string(), "1.9.2", "1.9", 3, "t2_tse_sag"});
  spineparse::testing::write_dicom_series(
      img, ph.geometry, {(d / "study/noext").string(), "1.9.3", "1.9", 4, "t1 sag"});
  NdArray loc(DType::kFloat32, {1, img.dim(1), img.dim(2)});
  spineparse::testing::write_dicom_series(
      loc, ph.geometry, {(d / "study/noext").string(), "1.9.4", "1.9", 1, "localizer"});
  write_volume((d / "Case9.nii.gz").string(), img, ph.geometry);
  auto seeds = list_dataset(d.str(), "flat", "t2");
  std::map<std::string, CaseSeed> by_id;
  for (const auto& s : seeds) by_id[s.id] = s;
  ASSERT_EQ(by_id.size(), 5u) << [&] {
    std::string ids;
    for (const auto& s : seeds) ids += s.id + " ";
    return ids;
  }();
  EXPECT_TRUE(by_id.count("Case9"));
  EXPECT_THAT(by_id["patientA"].attrs["skipped"], HasSubstr("does not match the series filter"));
  EXPECT_EQ(by_id["S3_t2_tse_sag"].attrs.count("skipped"), 0u);
  EXPECT_THAT(by_id["S4_t1_sag"].attrs["skipped"], HasSubstr("'t1 sag' does not match"));
  EXPECT_THAT(by_id["S1_localizer"].attrs["skipped"], HasSubstr("not a 3-D series"));
  // Without a filter every volume series is a case.
  seeds = list_dataset(d.str(), "flat");
  int runnable = 0;
  for (const auto& s : seeds) runnable += s.attrs.count("skipped") == 0;
  EXPECT_EQ(runnable, 4);
}

// The DICOM-SEG of a label map on a series' grid: one segment per structure present, one frame
// per structure and slice holding it, each frame's pixels, position and source image right.
TEST(Dicom, SegmentationReadsBackWithItsFramesGeometryAndReferences) {
  TempDir d;
  SynthOptions o;
  o.min_size = 64;
  o.max_size = 80;
  const Phantom ph = make_phantom(o, 2);
  const NdArray img = as_float(*ph.image);
  spineparse::testing::write_dicom_series(img, ph.geometry, {(d / "sag").string(), "1.7.7"});
  const auto series = find_dicom_series(d.str());
  ASSERT_EQ(series.size(), 1u);
  const Volume v = read_dicom_series(series[0].files);
  const auto labels =
      reorient(*ph.mask, plan_reorientation(axis_codes(ph.geometry), axis_codes(v.geometry)));
  ASSERT_EQ(labels->shape(), v.data->shape());
  const std::string path = (d / "seg.dcm").string();
  write_dicom_seg(path, *labels, v.geometry, series[0].files);

  DcmSegmentation* raw = nullptr;
  ASSERT_TRUE(DcmSegmentation::loadFile(path.c_str(), raw).good());
  std::unique_ptr<DcmSegmentation> seg(raw);
  const std::int64_t D = labels->dim(0), H = labels->dim(1), W = labels->dim(2);
  const auto* l = labels->data<std::uint8_t>();
  std::set<int> present;
  std::size_t frames_expected = 0;
  for (int s = 1; s < 20; ++s)
    for (std::int64_t k = 0; k < D; ++k) {
      bool any = false;
      for (std::int64_t i = 0; i < H * W && !any; ++i) any = l[k * H * W + i] == s;
      if (any) {
        present.insert(s);
        ++frames_expected;
      }
    }
  EXPECT_EQ(seg->getNumberOfSegments(), present.size());
  ASSERT_EQ(seg->getNumberOfFrames(), frames_expected);
  OFString study;
  seg->getStudy().getStudyInstanceUID(study);
  EXPECT_EQ(std::string(study.c_str()), "1.2.826.0.1.3680043.8.498.2");
  std::vector<std::string> sops;  // SOPInstanceUID of each source slice, in slice order
  for (const auto& f : series[0].files) {
    DcmFileFormat ff;
    ASSERT_TRUE(ff.loadFile(f.c_str()).good());
    OFString uid;
    ff.getDataset()->findAndGetOFString(DCM_SOPInstanceUID, uid);
    sops.push_back(uid.c_str());
  }
  FGInterface& fg = seg->getFunctionalGroups();
  const auto& g = v.geometry;
  for (Uint32 f = 0; f < seg->getNumberOfFrames(); ++f) {
    auto* pos = dynamic_cast<FGPlanePosPatient*>(fg.get(f, DcmFGTypes::EFG_PLANEPOSPATIENT));
    auto* sg = dynamic_cast<FGSegmentation*>(fg.get(f, DcmFGTypes::EFG_SEGMENTATION));
    auto* der = dynamic_cast<FGDerivationImage*>(fg.get(f, DcmFGTypes::EFG_DERIVATIONIMAGE));
    ASSERT_TRUE(pos && sg && der) << f;
    Float64 x, y, z;
    ASSERT_TRUE(pos->getImagePositionPatient(x, y, z).good());
    // The slice at that position.
    const double along = (x - g.origin[0]) * g.direction[2] + (y - g.origin[1]) * g.direction[5] +
                         (z - g.origin[2]) * g.direction[8];
    const auto k = static_cast<std::int64_t>(std::llround(along / g.spacing[2]));
    ASSERT_GE(k, 0);
    ASSERT_LT(k, D);
    Uint16 segment = 0;
    sg->getReferencedSegmentNumber(segment);
    OFString label;
    seg->getSegment(segment)->getSegmentLabel(label);
    int s = 0;
    while (s < 20 && structure_name(s) != std::string(label.c_str())) ++s;
    ASSERT_LT(s, 20) << label;
    OFString source;
    der->getDerivationImageItems()[0]
        ->getSourceImageItems()[0]
        ->getImageSOPInstanceReference()
        .getReferencedSOPInstanceUID(source);
    EXPECT_EQ(std::string(source.c_str()), sops[static_cast<std::size_t>(k)]) << f;
    std::unique_ptr<DcmIODTypes::Frame> px(DcmSegUtils::unpackBinaryFrame(
        seg->getFrame(f), static_cast<Uint16>(W), static_cast<Uint16>(H)));
    std::int64_t wrong = 0;
    for (std::int64_t r = 0; r < W; ++r)
      for (std::int64_t c = 0; c < H; ++c)
        wrong += (px->pixData[r * H + c] != 0) != (l[(k * H + c) * W + r] == s);
    EXPECT_EQ(wrong, 0) << "frame " << f << " " << label;
  }
}

// A file on which GDCM's own parser asserts (found by fuzz_dicom: a Part 10 header with bytes of
// the meta group shuffled). Readers check each file in the helper spineparse-dicom-check: the
// file is refused with the reason and this process goes on.
TEST(Dicom, AFileThatMakesGdcmAbortIsRefusedWithoutTakingTheProcessDown) {
  const std::string hex =
      "4449434d02000000554c04001c0000000200100055491400312e322e3834302e31303030382e312e322e3100"
      "08006000435302004d52200032004453080031305c2d32305c352000370044530c00305c315c305c305c305c"
      "2d31280002005553020001002800040043530c004d4f4e4f4348524f4d453220280010005553020004002800"
      "11005553020328000000300044530800302e355c302e373528000001555302000c0028000101555302000c00"
      "28000201555302000b0028000301555302000000e07f10004f57000018000000010101010101010101010101"
      "010101010101010101010101";
  std::string bytes(128, '\0');
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  TempDir d;
  const std::string path = (d / "crash.dcm").string();
  spineparse::write_file_atomic(path, bytes);
  EXPECT_THAT([&] { spineparse::io::check_dicom_file_isolated(path); },
              ::testing::ThrowsMessage<std::runtime_error>(
                  HasSubstr("crash.dcm: the DICOM parser (GDCM) aborted on it (signal 6)")));
  // A good slice passes through the helper with its facts.
  const Phantom ph = phantom("PIL");
  const NdArray img = as_float(*ph.image);
  spineparse::testing::write_dicom_series(img, ph.geometry, {(d / "s").string()});
  const auto f = spineparse::io::check_dicom_file_isolated(files_of((d / "s").string()).front());
  EXPECT_EQ(f.rows, img.dim(1));
  EXPECT_EQ(f.columns, img.dim(2));
  EXPECT_EQ(f.bits_allocated, 16);
  EXPECT_TRUE(f.has_orientation && f.has_position && f.has_pixel_spacing);
}
