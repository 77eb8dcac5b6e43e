#include "metrics/measure_sr.hpp"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmsr/cmr/init.h>
#include <dcmtk/dcmsr/cmr/tid1500.h>
#include <dcmtk/dcmsr/dsrdoc.h>
#include <dcmtk/oflog/oflog.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>

#include "spine/labels.hpp"
#include "spineparse/files.hpp"

namespace spineparse::metrics {

namespace {

// DCMTK's logger setup and its context groups (the code lists TID 1500 checks titles, procedures
// and measurements against, filled on first use) are not thread-safe: set up once, before any
// report is built, as DCMTK advises for threaded programs.
void init_dcmtk() {
  static std::once_flag once;
  std::call_once(once, [] {
    OFLog::configure(OFLogger::FATAL_LOG_LEVEL);  // failures come back as OFCondition, thrown
    CMR_ContentMappingResource::initializeAllContextGroups();
  });
}

void check(const OFCondition& c, const std::string& what) {
  if (c.bad()) throw std::runtime_error(what + ": " + c.text());
}

std::string decimal(double v) {  // DS: at most 16 characters
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

DSRCodedEntryValue local_code(const char* value, const char* meaning) {
  return DSRCodedEntryValue(value, kMeasurementCodingScheme, meaning);
}

const DSRCodedEntryValue& unit(const std::string& ucum) {
  static const std::map<std::string, DSRCodedEntryValue> kUnits = {
      {"mm", DSRCodedEntryValue("mm", "UCUM", "millimeter")},
      {"deg", DSRCodedEntryValue("deg", "UCUM", "degree")},
      {"ml", DSRCodedEntryValue("ml", "UCUM", "milliliter")},
      {"1", DSRCodedEntryValue("1", "UCUM", "no units")}};
  return kUnits.at(ucum);
}

// A structure's values with their concepts: the volume and mean intensity by SNOMED CT, the rest
// in the local scheme (docs/measurements.md).
struct Concept {
  DSRCodedEntryValue code;
  const char* unit;
  double value;
};

std::vector<Concept> level_concepts(const LevelMeasurement& l) {
  std::vector<Concept> c;
  for (const auto& col : measurement_columns())
    if (col.sr_code)
      c.push_back({DSRCodedEntryValue(col.sr_code, col.sr_scheme, col.sr_meaning), col.unit,
                   col.value(l)});
  return c;
}

std::vector<Concept> alignment_concepts(const CaseMeasurement& m) {
  // An angle resting on an unreliable structure is left out (NaN).
  std::vector<Concept> c = {
      {local_code("LL", "Lumbar lordosis L1-S1"), "deg",
       m.lordosis_reliable() ? m.lordosis_l1_s1_deg : NAN},
      {local_code("SS", "Sacral slope"), "deg", m.reliable(1) ? m.sacral_slope_deg : NAN}};
  for (int disc = 11; disc <= kMaxLabel; ++disc) {
    const std::string name = structure_name(disc);
    c.push_back({DSRCodedEntryValue(("SEG" + std::to_string(disc - 10)).c_str(),
                                    kMeasurementCodingScheme, ("Segmental angle " + name).c_str()),
                 "deg",
                 m.segmental_reliable(disc - 10) ? m.segmental_deg[static_cast<std::size_t>(disc - 11)]
                                                 : NAN});
  }
  return c;
}

// Loads a DICOM file's header (large values stay on disk).
void load(DcmFileFormat& f, const std::string& path) {
  check(f.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, 4096), "cannot read " + path);
}

std::string get(DcmItem& d, const DcmTagKey& tag) {
  OFString v;
  d.findAndGetOFString(tag, v);
  return v.c_str();
}

// The SEG's segment number of each structure, by the segment label write_dicom_seg gives.
std::map<int, Uint16> segment_numbers(DcmItem& seg) {
  std::map<std::string, int> by_name;
  for (int label = 1; label <= kMaxLabel; ++label) by_name[structure_name(label)] = label;
  std::map<int, Uint16> out;
  DcmItem* item = nullptr;
  for (unsigned long i = 0; seg.findAndGetSequenceItem(DCM_SegmentSequence, item, i).good(); ++i) {
    Uint16 number = 0;
    item->findAndGetUint16(DCM_SegmentNumber, number);
    const auto it = by_name.find(get(*item, DCM_SegmentLabel));
    if (it != by_name.end()) out[it->second] = number;
  }
  return out;
}

void add_values(TID1500_MeasurementReport::TID1411_Measurements& g,
                const std::vector<Concept>& concepts, const std::string& what) {
  for (const Concept& c : concepts) {
    if (std::isnan(c.value)) continue;
    check(g.addMeasurement(CID7469_GenericIntensityAndSizeMeasurements(c.code),
                           CMR_SRNumericMeasurementValue(decimal(c.value).c_str(), unit(c.unit)),
                           OFFalse),
          what);
  }
}

}  // namespace

void write_measurement_sr(const std::string& path, const CaseMeasurement& m,
                          const std::string& seg_path,
                          const std::vector<std::string>& source_files) {
  init_dcmtk();
  if (source_files.empty()) throw std::runtime_error(path + ": no source images");
  DcmFileFormat seg, first;
  load(seg, seg_path);
  load(first, source_files.front());
  DcmItem& seg_ds = *seg.getDataset();
  const std::map<int, Uint16> segments = segment_numbers(seg_ds);
  const std::string series = get(*first.getDataset(), DCM_SeriesInstanceUID);

  TID1500_MeasurementReport report(
      CID7021_MeasurementReportDocumentTitles::ImagingMeasurementReport);
  char uid[100];
  check(report.getObservationContext().addDeviceObserver(
            dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT), "spineparse", "spineparse",
            "SpineParseNet"),
        path);
  check(
      report.addProcedureReported(CID100_QuantitativeDiagnosticImagingProcedures::ImagingProcedure),
      path);
  bool first_group = true;
  for (const LevelMeasurement& l : m.levels) {
    const auto seg_it = segments.find(l.label);
    // Unreliable structures (metrics.qc) are left out: the report lists them.
    if (seg_it == segments.end() || l.voxels == 0 || !l.reliable) continue;
    if (!first_group) check(report.addVolumetricROIMeasurements(), path);
    first_group = false;
    auto& g = report.getVolumetricROIMeasurements();
    const std::string what = path + " (" + structure_name(l.label) + ")";
    check(g.setTrackingIdentifier(structure_name(l.label)), what);
    check(g.setTrackingUniqueIdentifier(dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT)),
          what);
    check(g.setReferencedSegment(seg_ds, seg_it->second, OFFalse), what);
    check(g.setSourceSeriesForSegmentation(series.c_str()), what);
    const SnomedCode site = snomed_code(l.label);
    check(g.addFindingSite(DSRCodedEntryValue(site.value, "SCT", site.meaning)), what);
    add_values(g, level_concepts(l), what);
  }
  // The alignment group only with a value in it (an empty group makes the report invalid; a case
  // with nothing reliable, one that failed QC, gets a report without groups).
  std::vector<Concept> alignment;
  for (const Concept& c : alignment_concepts(m))
    if (!std::isnan(c.value)) alignment.push_back(c);
  if (!alignment.empty()) {
    auto& align = report.getIndividualMeasurements();
    check(align.setTrackingIdentifier("alignment"), path);
    check(align.setTrackingUniqueIdentifier(dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT)),
          path);
    for (const Concept& c : alignment)
      check(align.addMeasurement(
                CID7469_GenericIntensityAndSizeMeasurements(c.code),
                CMR_SRNumericMeasurementValue(decimal(c.value).c_str(), unit(c.unit)), OFFalse),
            path + " (alignment)");
  }
  if (!report.isValid()) throw std::runtime_error(path + ": the measurement report is not valid");

  DSRDocument doc;
  check(doc.setTreeFromRootTemplate(report), path);
  check(doc.readPatientData(*first.getDataset()), path);
  check(doc.readStudyData(*first.getDataset()), path);
  doc.createNewSeries();
  doc.setSeriesDescription("spineparse measurements");
  doc.setSeriesNumber("9902");
  doc.setManufacturer("spineparse");
  check(doc.getCodingSchemeIdentification().addItem(kMeasurementCodingScheme), path);
  doc.getCodingSchemeIdentification().setCodingSchemeName("spineparse spine measurements");
  auto& evidence = doc.getCurrentRequestedProcedureEvidence();
  for (const auto& f : source_files) {
    DcmFileFormat src;
    load(src, f);
    check(evidence.addItem(*src.getDataset()), f);
  }
  check(evidence.addItem(seg_ds), seg_path);

  DcmFileFormat out;
  check(doc.write(*out.getDataset()), path);
  const std::string tmp = temp_path_for(path);
  check(out.saveFile(tmp.c_str(), EXS_LittleEndianExplicit), "cannot write " + path);
  commit_file(tmp, path);
}

std::vector<SrValue> read_measurement_sr(const std::string& path,
                                         std::vector<std::string>* evidence_instances) {
  init_dcmtk();
  DcmFileFormat f;
  check(f.loadFile(path.c_str()), "cannot read " + path);
  DSRDocument doc;
  check(doc.read(*f.getDataset()), path);
  std::vector<SrValue> out;
  DSRDocumentTree& tree = doc.getTree();
  std::string group;
  if (tree.gotoRoot() > 0) do {
      const DSRContentItem& item = tree.getCurrentContentItem();
      const DSRCodedEntryValue& name = item.getConceptName();
      if (item.getValueType() == DSRTypes::VT_Text && name.getCodeValue() == "112039")
        group = item.getStringValue().c_str();  // (112039, DCM, "Tracking Identifier")
      if (item.getValueType() == DSRTypes::VT_Num) {
        const DSRNumericMeasurementValue& v = item.getNumericValue();
        const char* text = v.getNumericValue().c_str();  // DS: a decimal string
        char* end = nullptr;
        const double x = std::strtod(text, &end);
        if (end == text)
          throw std::runtime_error(path + ": numeric value of " + name.getCodeMeaning().c_str() +
                                   " is not a number");
        out.push_back({group, name.getCodeValue().c_str(), name.getCodeMeaning().c_str(),
                       v.getMeasurementUnit().getCodeValue().c_str(), x});
      }
    } while (tree.iterate());
  if (evidence_instances) {
    auto& ev = doc.getCurrentRequestedProcedureEvidence();
    if (ev.gotoFirstItem().good()) do {
        OFString uid;
        ev.getSOPInstanceUID(uid);
        evidence_instances->push_back(uid.c_str());
      } while (ev.gotoNextItem().good());
  }
  return out;
}

}  // namespace spineparse::metrics
