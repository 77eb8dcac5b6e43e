// The measurements as a DICOM SR: written beside a DICOM-SEG over a DICOM series, read back with
// DCMTK, every value present with its unit, each group referencing the SEG's segment of its
// structure, the evidence naming the source images and the SEG.
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmsr/dsrdoc.h>
#include <gmock/gmock.h>

#include <cmath>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "dicom_fixtures.hpp"
#include "io/dicom.hpp"
#include "io/dicom_seg.hpp"
#include "io/orientation.hpp"
#include "io/synth.hpp"
#include "metrics/measure.hpp"
#include "metrics/measure_sr.hpp"
#include "spine/labels.hpp"
#include "test_util.hpp"

using namespace spineparse;
using namespace spineparse::metrics;
using spineparse::testing::TempDir;
namespace fs = std::filesystem;

namespace {

std::string uid_of(const std::string& file, const DcmTagKey& tag) {
  DcmFileFormat f;
  EXPECT_TRUE(f.loadFile(file.c_str()).good()) << file;
  OFString v;
  f.getDataset()->findAndGetOFString(tag, v);
  return v.c_str();
}

// A synthetic case as a DICOM series, its labels on the series' grid and their DICOM-SEG.
struct DicomCase {
  std::vector<std::string> files;
  io::Volume volume;
  NdArrayPtr labels;
  std::string seg;
};
DicomCase dicom_case(const TempDir& d) {
  io::SynthOptions o;
  o.min_size = 96;
  o.max_size = 128;
  const io::Phantom ph = io::make_phantom(o, 3);
  NdArray img(DType::kFloat32, ph.image->shape());
  for (std::int64_t i = 0; i < img.numel(); ++i)
    img.data<float>()[i] = static_cast<float>(ph.image->data<std::int16_t>()[i]);
  spineparse::testing::write_dicom_series(img, ph.geometry, {(d / "sag").string(), "1.7.9"});
  DicomCase c;
  c.files = io::find_dicom_series(d.str()).at(0).files;
  c.volume = io::read_dicom_series(c.files);
  c.labels = io::reorient(*ph.mask, io::plan_reorientation(io::axis_codes(ph.geometry),
                                                           io::axis_codes(c.volume.geometry)));
  c.seg = (d / "seg.dcm").string();
  io::write_dicom_seg(c.seg, *c.labels, c.volume.geometry, c.files);
  return c;
}

}  // namespace

TEST(MeasureSr, ReadsBackWithEveryValueItsSegmentAndItsEvidence) {
  TempDir d;
  const DicomCase c = dicom_case(d);
  const CaseMeasurement m =
      measure_case("Case1", *c.labels, c.volume.geometry, c.volume.data.get());
  const std::string sr = (d / "sr.dcm").string();
  write_measurement_sr(sr, m, c.seg, c.files);

  std::vector<std::string> evidence;
  const auto values = read_measurement_sr(sr, &evidence);
  // Each structure's values under its own name, equal to the measurement (6 significant digits).
  std::map<std::string, std::map<std::string, double>> got;
  for (const auto& v : values) got[v.group][v.code] = v.value;
  int structures = 0;
  for (const auto& l : m.levels) {
    if (l.voxels == 0) continue;
    ++structures;
    const auto& g = got[structure_name(l.label)];
    EXPECT_NEAR(g.at("118565006"), l.volume_ml, 1e-5 * l.volume_ml) << l.label;
    const std::pair<const char*, double> expect[] = {
        {"AH", l.anterior_height_mm},    {"PH", l.posterior_height_mm},
        {"APD", l.ap_depth_mm},          {"DHI", l.dhi},
        {"373098007", l.mean_intensity}, {"SR", l.signal_ratio}};
    for (const auto& [code, want] : expect) {
      if (std::isnan(want)) {
        EXPECT_EQ(g.count(code), 0u) << structure_name(l.label) << " " << code;  // blank: absent
      } else {
        ASSERT_EQ(g.count(code), 1u) << structure_name(l.label) << " " << code;
        EXPECT_NEAR(g.at(code), want, 1e-5 * std::abs(want)) << structure_name(l.label) << code;
      }
    }
  }
  EXPECT_GE(structures, 15);
  ASSERT_TRUE(got.count("alignment"));
  EXPECT_NEAR(got["alignment"].at("LL"), m.lordosis_l1_s1_deg, 1e-4);
  EXPECT_NEAR(got["alignment"].at("SEG2"), m.segmental_deg[1], 1e-4);  // L4/L5
  for (const auto& v : values)
    EXPECT_THAT(v.unit, ::testing::AnyOf("mm", "deg", "ml", "1")) << v.group << " " << v.meaning;

  // The evidence: every source image and the SEG; patient and study those of the series.
  std::set<std::string> want_evidence = {uid_of(c.seg, DCM_SOPInstanceUID)};
  for (const auto& f : c.files) want_evidence.insert(uid_of(f, DCM_SOPInstanceUID));
  EXPECT_EQ(std::set<std::string>(evidence.begin(), evidence.end()), want_evidence);
  EXPECT_EQ(uid_of(sr, DCM_StudyInstanceUID), uid_of(c.files[0], DCM_StudyInstanceUID));
  EXPECT_NE(uid_of(sr, DCM_SeriesInstanceUID), uid_of(c.files[0], DCM_SeriesInstanceUID));

  // Each group's Referenced Segment: the SEG instance and the segment with its structure's label.
  DcmFileFormat seg_file;
  ASSERT_TRUE(seg_file.loadFile(c.seg.c_str()).good());
  std::map<int, std::string> segment_label;
  DcmItem* item = nullptr;
  for (unsigned long i = 0;
       seg_file.getDataset()->findAndGetSequenceItem(DCM_SegmentSequence, item, i).good(); ++i) {
    Uint16 n = 0;
    OFString label;
    item->findAndGetUint16(DCM_SegmentNumber, n);
    item->findAndGetOFString(DCM_SegmentLabel, label);
    segment_label[n] = label.c_str();
  }
  DcmFileFormat f;
  ASSERT_TRUE(f.loadFile(sr.c_str()).good());
  DSRDocument doc;
  ASSERT_TRUE(doc.read(*f.getDataset()).good());
  OFString template_id, mapping;
  doc.getTree().getTemplateIdentification(template_id, mapping);
  EXPECT_EQ(std::string(template_id.c_str()), "1500");
  DSRDocumentTree& tree = doc.getTree();
  std::string group;
  int references = 0;
  ASSERT_GT(tree.gotoRoot(), 0u);
  do {
    const DSRContentItem& it = tree.getCurrentContentItem();
    if (it.getValueType() == DSRTypes::VT_Text && it.getConceptName().getCodeValue() == "112039")
      group = it.getStringValue().c_str();
    if (it.getValueType() == DSRTypes::VT_Image) {  // (121191, DCM, "Referenced Segment")
      const DSRImageReferenceValue& ref = it.getImageReference();
      EXPECT_EQ(std::string(ref.getSOPInstanceUID().c_str()), uid_of(c.seg, DCM_SOPInstanceUID));
      ASSERT_EQ(ref.getSegmentList().getNumberOfItems(), 1u);
      EXPECT_EQ(segment_label[ref.getSegmentList().getItem(1)], group);
      ++references;
    }
  } while (tree.iterate());
  EXPECT_EQ(references, structures);
}

// A case with nothing reliable (one that failed QC) still gets a valid report: it holds no
// measurement group, and no alignment group without a value.
TEST(MeasureSr, ACaseWithNothingReliableGetsAReportWithoutValues) {
  TempDir d;
  const DicomCase c = dicom_case(d);
  CaseMeasurement m = measure_case("Case1", *c.labels, c.volume.geometry, c.volume.data.get());
  std::array<double, 19> conf, reliable;
  conf.fill(0.9), reliable.fill(-1);
  apply_confidence(m, conf, reliable);
  const std::string sr = (d / "sr.dcm").string();
  write_measurement_sr(sr, m, c.seg, c.files);
  std::vector<std::string> evidence;
  EXPECT_TRUE(read_measurement_sr(sr, &evidence).empty());
  EXPECT_EQ(evidence.size(), c.files.size() + 1);  // the source images and the SEG
}

TEST(MeasureSr, AMissingSegmentationIsNamed) {
  TempDir d;
  const DicomCase c = dicom_case(d);
  const CaseMeasurement m = measure_case("Case1", *c.labels, c.volume.geometry);
  try {
    write_measurement_sr((d / "sr.dcm").string(), m, (d / "absent.dcm").string(), c.files);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("absent.dcm"));
  }
  EXPECT_FALSE(fs::exists(d / "sr.dcm"));
}

// Reports and DICOM-SEGs written by several threads at once, the reports the first ones of the
// process (ctest runs each test in its own): DCMTK's first uses are not all thread-safe.
TEST(MeasureSr, WritersStartingTogetherAllSucceed) {
  TempDir d;
  const DicomCase c = dicom_case(d);
  const CaseMeasurement m =
      measure_case("Case1", *c.labels, c.volume.geometry, c.volume.data.get());
  std::vector<std::thread> threads;
  std::mutex mu;
  std::vector<std::string> errors;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      try {
        const std::string n = std::to_string(t);
        if (t % 2)  // a DICOM-SEG written meanwhile, as the pipeline's other cases do
          io::write_dicom_seg((d / ("seg" + n + ".dcm")).string(), *c.labels, c.volume.geometry,
                              c.files);
        else
          write_measurement_sr((d / ("sr" + n + ".dcm")).string(), m, c.seg, c.files);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lk(mu);
        errors.push_back(e.what());
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_TRUE(errors.empty()) << errors.size() << " failed, e.g. " << errors[0];
}
