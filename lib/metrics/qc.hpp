// Quality control: how far to trust each structure of a result and the case as a whole, from what
// the pipeline already knows (docs/qc.md has the definitions and their calibration).
//
// Signals are measured on the model's grid after refinement: per structure the fine network's
// probability of the label it kept, agreement with the coarse network, how much refinement
// changed, fragmentation, size and spacing against its neighbours in the chain, contact with the
// edge of the view; per case the training-range warnings and the levels missing inside the chain.
// A QcModel (logistic weights fitted on synthetic cohorts with known truth, read from JSON) turns
// them into a confidence per structure in [0, 1] (the probability that its Dice is at least 0.7)
// and a case score in [0, 1]; thresholds give the verdict pass | review | fail and its reasons.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "spineparse/case.hpp"
#include "spineparse/ndarray.hpp"

namespace spineparse::metrics {

struct StructureSignals {
  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  int label = 0;
  std::int64_t voxels = 0;
  double probability = kNaN;  // mean fine probability over voxels that keep the network's label
  double low_share = kNaN;    // share of those voxels below probability 0.5
  double coarse_agreement = kNaN;  // share of voxels the coarse network labels alike
  double relabelled = 0;           // share of voxels refinement gave this label from another
  double fragmented = 0;           // share outside the largest face-connected piece
  double size_ratio = kNaN;        // |log(volume / same-type chain neighbours' volume)|
  double spacing_misfit = kNaN;  // largest |gap| to an adjacent chain neighbour / their mean height
  double off_axis = kNaN;        // distance from the line through its chain neighbours / own height
  bool cut = false;              // touches the in-plane edge of the view
  bool order_ok = true;          // lies between its chain neighbours along the spine
};

struct CaseSignals {
  std::vector<StructureSignals> structures;  // the labels present, in label order
  std::vector<std::string> out_of_range;     // "slice_spacing_mm 1", ... (training-range warnings)
  std::vector<int> missing;                  // chain labels absent between present ones
};

// labels: uint8 [D,H,W]; unrefined (labels before refinement), probability (uint8 [D,H,W], 255 x
// the fine network's top probability) and coarse_logits ([C,D,h,w] over the central rows, as
// coarse.gcsn writes them) may be null. spacing: mm along H, W, D. warnings: the case's lines.
CaseSignals qc_signals(const NdArray& labels, const NdArray* unrefined, const NdArray* probability,
                       const NdArray* coarse_logits, std::array<double, 3> spacing,
                       const std::string& warnings);

// The named inputs of the two logistic models; `confidence` is by structure, in the order of
// c.structures.
std::map<std::string, double> structure_features(const StructureSignals& s, const CaseSignals& c);
std::map<std::string, double> case_features(const CaseSignals& c,
                                            const std::vector<double>& confidence);

struct Logistic {
  std::vector<std::string> features;
  std::vector<double> weights, fill;  // fill: the value a missing (NaN) feature takes
  double bias = 0;
  double operator()(const std::map<std::string, double>& x) const;
};

// The weights come from a calibration file; the thresholds are the stage's parameters.
struct QcModel {
  Logistic structure, case_score;
  double reliable_from = 0.5;  // a structure's confidence at least this: reliable
  double pass_from = 0.7;      // a case's score at least this (and no demoting reason): pass
  double fail_below = 0.3;     // below this: fail
  std::string source;          // where the weights were fitted (for the record)
  static QcModel from_json(const std::string& text, const std::string& where);
};

struct QcResult {
  std::array<double, 19> confidence;  // by label - 1; NaN for an absent structure
  double score = 0;
  std::string verdict;               // pass | review | fail
  std::vector<std::string> reasons;  // "code: words"
  int worst_label = 0;               // the least confident structure (0: none)
  double reliable_from = 0.5;        // the threshold it was judged with
  QcResult();
};

QcResult assess(const CaseSignals& signals, const QcModel& model);

// The case's record (run.json's "qc" object and qc/cases/<id>.json): verdict, score, reasons,
// per-structure confidence by name and, with `signals`, every signal.
std::string qc_record_json(const QcResult& r, const CaseSignals* signals);
QcResult qc_result_from_json(const std::string& text);

// review.csv: one row per case, worst first (fail, review, pass; lower score first), columns
// case,qc,qc_score,reasons,worst_structure,worst_confidence.
std::string review_csv(const std::vector<std::pair<std::string, QcResult>>& cases);

}  // namespace spineparse::metrics
