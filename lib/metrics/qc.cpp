#include "metrics/qc.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "spine/labels.hpp"

namespace spineparse::metrics {

namespace {

using json = nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

int chain_position(int label) {
  for (std::size_t i = 0; i < kSpineChain.size(); ++i)
    if (kSpineChain[i] == label) return static_cast<int>(i);
  return -1;
}

// The first index in [i, end) whose byte is not zero, or end. Label maps are mostly background;
// testing eight bytes at a time keeps the passes below from costing a branch per voxel.
std::int64_t next_nonzero(const std::uint8_t* p, std::int64_t i, std::int64_t end) {
  for (; i + 8 <= end; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, p + i, 8);
    if (word) break;
  }
  while (i < end && !p[i]) ++i;
  return i;
}

// What one pass over the voxels gathers per label.
struct Tally {
  std::int64_t n = 0, kept = 0, low = 0, relabelled = 0, coarse_seen = 0, coarse_same = 0;
  std::int64_t p_sum = 0;                                  // of probabilities x 255
  std::int64_t sh = 0, sw = 0, shh = 0, sww = 0, shw = 0;  // moments in voxels (h, w)
  double h = 0, w = 0, hh = 0, ww = 0, hw = 0;             // the same in mm (sagittal plane)
  bool edge = false;
};

// The voxel box [lo, hi] (inclusive) around what was tallied; empty while hi[0] < 0.
struct Box {
  std::array<std::int64_t, 3> lo{INT64_MAX, INT64_MAX, INT64_MAX}, hi{-1, -1, -1};
  void add_run(std::int64_t d, std::int64_t h, std::int64_t w0, std::int64_t w1) {
    lo = {std::min(lo[0], d), std::min(lo[1], h), std::min(lo[2], w0)};
    hi = {std::max(hi[0], d), std::max(hi[1], h), std::max(hi[2], w1)};
  }
};

// The coarse network's label (argmax over classes) at (row, col) of its [D x h, w] grid, computed a
// row at a time (the channels are planes n apart), each row when first asked: the tallies ask
// only around the spine.
class CoarseLabels {
 public:
  CoarseLabels(const NdArray* logits, std::int64_t D) {
    if (!logits || logits->ndim() != 4 || logits->dim(1) != D ||
        logits->dtype() != DType::kFloat32 || logits->dim(0) > 255 || logits->numel() == 0)
      return;
    x_ = logits->data<float>();
    C_ = logits->dim(0), w_ = logits->dim(3), n_ = D * logits->dim(2) * w_;
    label_.resize(static_cast<std::size_t>(n_));
    done_.assign(static_cast<std::size_t>(n_ / w_), 0);
  }
  bool empty() const { return label_.empty(); }
  std::uint8_t at(std::int64_t row, std::int64_t col) {
    if (!done_[static_cast<std::size_t>(row)]) fill_row(row), done_[row] = 1;
    return label_[static_cast<std::size_t>(row * w_ + col)];
  }

 private:
  void fill_row(std::int64_t row) {
    const std::int64_t begin = row * w_;
    std::vector<float> best(x_ + begin, x_ + begin + w_);
    std::fill_n(label_.begin() + begin, w_, 0);
    for (std::int64_t c = 1; c < C_; ++c) {
      const float* x = x_ + c * n_ + begin;
      for (std::int64_t k = 0; k < w_; ++k)
        if (x[k] > best[k]) best[k] = x[k], label_[begin + k] = static_cast<std::uint8_t>(c);
    }
  }
  const float* x_ = nullptr;
  std::int64_t C_ = 0, w_ = 0, n_ = 0;
  std::vector<std::uint8_t> label_, done_;
};

// Per label tallies, and the box around them; rows outside the coarse grid's central crop have no
// coarse label.
std::vector<Tally> tally(const NdArray& labels, const NdArray* unrefined,
                         const NdArray* probability, const NdArray* coarse_logits,
                         std::array<double, 3> sp, Box& box) {
  const std::int64_t D = labels.dim(0), H = labels.dim(1), W = labels.dim(2);
  CoarseLabels coarse(coarse_logits, D);
  const std::int64_t ch = coarse.empty() ? 0 : coarse_logits->dim(2);
  const std::int64_t cw = coarse.empty() ? 0 : coarse_logits->dim(3);
  const std::int64_t begin = H / 4, rows = H - 2 * (H / 4);  // as nn::central_rows
  const auto* L = labels.data<std::uint8_t>();
  const auto* U = unrefined ? unrefined->data<std::uint8_t>() : nullptr;
  const auto* P = probability ? probability->data<std::uint8_t>() : nullptr;
  std::vector<std::int64_t> coarse_col(coarse.empty() ? 0 : W);
  for (std::int64_t w = 0; w < static_cast<std::int64_t>(coarse_col.size()); ++w)
    coarse_col[w] = std::min(cw - 1, (2 * w + 1) * cw / (2 * W));
  std::vector<Tally> t(kNumClasses);
  for (std::int64_t d = 0; d < D; ++d)
    for (std::int64_t h = 0; h < H; ++h) {
      const std::int64_t r = h - begin;
      const bool in_crop = !coarse.empty() && r >= 0 && r < rows;
      const std::int64_t cr = in_crop ? std::min(ch - 1, (2 * r + 1) * ch / (2 * rows)) : 0;
      const std::int64_t row = (d * H + h) * W;
      std::int64_t first = -1, last = -1;
      for (std::int64_t w = next_nonzero(L, row, row + W) - row; w < W;
           w = next_nonzero(L, row + w + 1, row + W) - row) {
        const std::int64_t i = row + w;
        const int l = L[i];
        if (l >= kNumClasses) continue;
        first = first < 0 ? w : first, last = w;
        Tally& a = t[l];
        ++a.n;
        a.sh += h, a.sw += w, a.shh += h * h, a.sww += w * w, a.shw += h * w;
        a.edge |= h == 0 || w == 0 || h == H - 1 || w == W - 1;
        if (U && U[i] != l) {
          ++a.relabelled;
        } else if (P) {
          ++a.kept;
          a.p_sum += P[i];
          a.low += P[i] < 128;
        }
        if (in_crop) {
          ++a.coarse_seen;
          a.coarse_same += coarse.at(d * ch + cr, coarse_col[w]) == l;
        }
      }
      if (first >= 0) box.add_run(d, h, first, last);
    }
  for (Tally& a : t) {
    const double y = sp[0], z = sp[1];
    a.h = a.sh * y, a.w = a.sw * z, a.hh = a.shh * y * y, a.ww = a.sww * z * z, a.hw = a.shw * y * z;
  }
  return t;
}

// Runs of one label along a row, joined into 6-connected (face-connected) pieces by union-find:
// a run touches the runs it overlaps in the row above and in the same row of the slice before.
class RunPieces {
 public:
  struct Run {
    std::int64_t w0, w1;  // inclusive
    int label;
  };
  // Adds the runs of one row (in order of w) and joins them to those of the given earlier rows.
  void add_row(const std::uint8_t* row, std::int64_t w_begin, std::int64_t w_end,
               std::initializer_list<std::pair<std::size_t, std::size_t>> touching) {
    const std::size_t first = runs_.size();
    for (std::int64_t w = next_nonzero(row, w_begin, w_end); w < w_end;
         w = next_nonzero(row, w, w_end)) {
      const int l = row[w];
      std::int64_t e = w;
      while (e + 1 < w_end && row[e + 1] == l) ++e;
      runs_.push_back({w, e, l});
      parent_.push_back(runs_.size() - 1);
      w = e + 1;
    }
    for (const auto& [b, e] : touching) join(first, runs_.size(), b, e);
  }
  std::size_t size() const { return runs_.size(); }
  // Per label: voxels in all its pieces and in its largest.
  void piece_sizes(std::array<std::int64_t, kNumClasses>& total,
                   std::array<std::int64_t, kNumClasses>& largest) {
    std::vector<std::int64_t> size(runs_.size(), 0);
    for (std::size_t r = 0; r < runs_.size(); ++r) size[root(r)] += runs_[r].w1 - runs_[r].w0 + 1;
    for (std::size_t r = 0; r < runs_.size(); ++r) {
      const int l = runs_[r].label;
      if (l >= kNumClasses || !size[r]) continue;
      total[l] += size[r];
      largest[l] = std::max(largest[l], size[r]);
    }
  }

 private:
  std::size_t root(std::size_t r) {
    while (parent_[r] != r) r = parent_[r] = parent_[parent_[r]];
    return r;
  }
  // Joins runs [a, a_end) of the new row with the overlapping runs [b, b_end) of the same label.
  void join(std::size_t a, std::size_t a_end, std::size_t b, std::size_t b_end) {
    for (; a < a_end; ++a) {
      while (b < b_end && runs_[b].w1 < runs_[a].w0) ++b;
      for (std::size_t k = b; k < b_end && runs_[k].w0 <= runs_[a].w1; ++k)
        if (runs_[k].label == runs_[a].label) {
          const std::size_t x = root(a), y = root(k);
          if (x != y) parent_[std::max(x, y)] = std::min(x, y);
        }
    }
  }
  std::vector<Run> runs_;
  std::vector<std::size_t> parent_;
};

// Share of each label's voxels outside its largest 6-connected (face-connected) piece, over the
// box around all tallied labels.
std::array<double, kNumClasses> fragmentation(const NdArray& labels, const Box& box) {
  const auto& [lo, hi] = box;
  std::array<double, kNumClasses> out{};
  if (hi[0] < 0) return out;
  const std::int64_t H = labels.dim(1), W = labels.dim(2), rows = hi[1] - lo[1] + 1;
  RunPieces pieces;
  std::vector<std::size_t> row_start;  // per (d, h) of the box, then one past the last
  for (std::int64_t d = lo[0]; d <= hi[0]; ++d)
    for (std::int64_t h = lo[1]; h <= hi[1]; ++h) {
      const std::size_t k = row_start.size();
      row_start.push_back(pieces.size());
      const bool up = h > lo[1], back = d > lo[0];
      pieces.add_row(labels.data<std::uint8_t>() + (d * H + h) * W, lo[2], hi[2] + 1,
                     {{up ? row_start[k - 1] : 0, up ? row_start[k] : 0},
                      {back ? row_start[k - rows] : 0, back ? row_start[k - rows + 1] : 0}});
    }
  std::array<std::int64_t, kNumClasses> total{}, largest{};
  pieces.piece_sizes(total, largest);
  for (int l = 1; l < kNumClasses; ++l)
    out[l] = total[l] ? 1.0 - static_cast<double>(largest[l]) / static_cast<double>(total[l]) : 0;
  return out;
}

// A structure's place in the sagittal plane: centroid and covariance (mm).
struct Place {
  double h = 0, w = 0, vhh = 0, vww = 0, vhw = 0;
  explicit Place(const Tally& t) {
    const double n = static_cast<double>(t.n);
    h = t.h / n, w = t.w / n;
    vhh = std::max(t.hh / n - h * h, 0.0), vww = std::max(t.ww / n - w * w, 0.0);
    vhw = t.hw / n - h * w;
  }
  double extent(double uh, double uw) const {  // a solid's length along a unit direction
    return std::sqrt(12 * std::max(uh * uh * vhh + uw * uw * vww + 2 * uh * uw * vhw, 0.0));
  }
};

// Spacing, order and axis signals of the structure at chain position p against its neighbours.
void neighbour_signals(StructureSignals& s, int p, const std::vector<Tally>& t) {
  auto at = [&](int q) -> const Tally* {
    if (q < 0 || q >= static_cast<int>(kSpineChain.size())) return nullptr;
    const Tally& x = t[kSpineChain[q]];
    return x.n ? &x : nullptr;
  };
  const Place self(t[kSpineChain[p]]);
  const Tally *below = at(p - 1), *above = at(p + 1);
  double misfit = -1;
  double height = 0;
  for (const Tally* nb : {below, above}) {
    if (!nb) continue;
    const Place o(*nb);
    const double dh = o.h - self.h, dw = o.w - self.w, dist = std::hypot(dh, dw);
    if (dist <= 0) continue;
    const double own = self.extent(dh / dist, dw / dist), other = o.extent(dh / dist, dw / dist);
    height = std::max(height, own);
    const double gap = dist - 0.5 * (own + other);
    misfit = std::max(misfit, std::abs(gap) / std::max(0.5 * (own + other), 1e-6));
  }
  if (misfit >= 0) s.spacing_misfit = misfit;
  if (below && above && height > 0) {
    const Place a(*below), b(*above);
    const double dh = b.h - a.h, dw = b.w - a.w, len = std::hypot(dh, dw);
    if (len > 0) {
      const double along = ((self.h - a.h) * dh + (self.w - a.w) * dw) / len;
      s.order_ok = along > 0 && along < len;
      s.off_axis = std::abs((self.h - a.h) * dw - (self.w - a.w) * dh) / len / height;
    }
  }
  const Tally *lo = at(p - 2), *hi = at(p + 2);  // same type
  if (p > 0 && (lo || hi)) {
    const double nb = lo && hi ? std::sqrt(static_cast<double>(lo->n) * static_cast<double>(hi->n))
                               : static_cast<double>((lo ? lo : hi)->n);
    s.size_ratio = std::abs(std::log(static_cast<double>(t[kSpineChain[p]].n) / nb));
  }
}

// "slice_spacing_mm 1" from "slice_spacing_mm 1 is outside the model's training range (...)".
std::vector<std::string> range_findings(const std::string& warnings) {
  std::vector<std::string> out;
  std::istringstream lines(warnings);
  const std::string mark = " is outside the model's training range";
  for (std::string line; std::getline(lines, line);) {
    const auto at = line.find(mark);
    if (at != std::string::npos) out.push_back(line.substr(0, at));
  }
  return out;
}

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

std::string fixed(double v, int digits) {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(digits);
  o << v;
  return o.str();
}

}  // namespace

CaseSignals qc_signals(const NdArray& labels, const NdArray* unrefined, const NdArray* probability,
                       const NdArray* coarse_logits, std::array<double, 3> spacing,
                       const std::string& warnings) {
  if (labels.ndim() != 3 || labels.dtype() != DType::kUInt8)
    throw std::invalid_argument("qc: labels must be uint8 [D,H,W], not " + labels.shape_string());
  for (const NdArray* a : {unrefined, probability})
    if (a && (a->shape() != labels.shape() || a->dtype() != DType::kUInt8))
      throw std::invalid_argument("qc: " + a->shape_string() + " does not match the labels " +
                                  labels.shape_string());
  Box box;
  const auto t = tally(labels, unrefined, probability, coarse_logits, spacing, box);
  const auto frag = fragmentation(labels, box);
  CaseSignals c;
  c.out_of_range = range_findings(warnings);
  int lowest = -1, highest = -1;
  for (int p = 0; p < static_cast<int>(kSpineChain.size()); ++p)
    if (t[kSpineChain[p]].n) highest = p, lowest = lowest < 0 ? p : lowest;
  for (int p = lowest + 1; p < highest; ++p)
    if (!t[kSpineChain[p]].n) c.missing.push_back(kSpineChain[p]);
  for (int l = 1; l <= kMaxLabel; ++l) {
    const Tally& a = t[l];
    if (!a.n) continue;
    StructureSignals s;
    s.label = l;
    s.voxels = a.n;
    const double n = static_cast<double>(a.n);
    if (a.kept) {
      s.probability = static_cast<double>(a.p_sum) / 255.0 / static_cast<double>(a.kept);
      s.low_share = static_cast<double>(a.low) / static_cast<double>(a.kept);
    }
    if (a.coarse_seen)
      s.coarse_agreement = static_cast<double>(a.coarse_same) / static_cast<double>(a.coarse_seen);
    s.relabelled = static_cast<double>(a.relabelled) / n;
    s.fragmented = frag[l];
    s.cut = a.edge;
    neighbour_signals(s, chain_position(l), t);
    c.structures.push_back(s);
  }
  return c;
}

std::map<std::string, double> structure_features(const StructureSignals& s, const CaseSignals& c) {
  std::vector<double> p;
  for (const auto& o : c.structures)
    if (!std::isnan(o.probability)) p.push_back(o.probability);
  double case_p = kNaN;
  if (!p.empty()) {
    std::nth_element(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(p.size() / 2), p.end());
    case_p = p[p.size() / 2];
  }
  auto capped = [](double v) { return std::isnan(v) ? kNaN : std::min(v, 5.0); };
  return {{"probability", s.probability},
          {"low_share", s.low_share},
          {"coarse_agreement", s.coarse_agreement},
          {"relabelled", s.relabelled},
          {"fragmented", s.fragmented},
          {"size_ratio", capped(s.size_ratio)},
          {"spacing_misfit", capped(s.spacing_misfit)},
          {"off_axis", capped(s.off_axis)},
          {"cut", s.cut ? 1.0 : 0.0},
          {"order_wrong", s.order_ok ? 0.0 : 1.0},
          {"log_voxels", std::log(static_cast<double>(std::max<std::int64_t>(s.voxels, 1)))},
          {"case_probability", case_p},
          {"case_structures", static_cast<double>(c.structures.size())},
          {"case_missing", static_cast<double>(c.missing.size())},
          {"case_out_of_range", static_cast<double>(c.out_of_range.size())}};
}

std::map<std::string, double> case_features(const CaseSignals& c,
                                            const std::vector<double>& confidence) {
  // The least confident and the share below 0.5 leave out structures cut by the view: a partial
  // top level is expected and says nothing of the rest.
  double mean = 0, low = 0, least = 1, inside = 0;
  for (std::size_t k = 0; k < confidence.size(); ++k) {
    const double v = confidence[k];
    mean += v;
    if (k < c.structures.size() && c.structures[k].cut) continue;
    low += v < 0.5, least = std::min(least, v), ++inside;
  }
  const double n = static_cast<double>(confidence.size());
  return {{"mean_confidence", n ? mean / n : 0},
          {"least_confidence", inside ? least : 0},
          {"low_share", inside ? low / inside : 1},
          {"structures", n},
          {"missing", static_cast<double>(c.missing.size())},
          {"out_of_range", static_cast<double>(c.out_of_range.size())}};
}

double Logistic::operator()(const std::map<std::string, double>& x) const {
  double z = bias;
  for (std::size_t k = 0; k < features.size(); ++k) {
    auto it = x.find(features[k]);
    const double v = it == x.end() || std::isnan(it->second) ? fill[k] : it->second;
    z += weights[k] * v;
  }
  return sigmoid(z);
}

namespace {
Logistic logistic_from(const json& j, const std::string& where) {
  Logistic m;
  for (const auto& [name, w] : j.at("weights").items()) {
    m.features.push_back(name);
    m.weights.push_back(w.get<double>());
    m.fill.push_back(j.contains("fill") && j["fill"].contains(name) ? j["fill"][name].get<double>()
                                                                    : 0.0);
  }
  m.bias = j.at("bias").get<double>();
  if (m.features.empty()) throw std::runtime_error(where + ": a model without weights");
  return m;
}
}  // namespace

QcModel QcModel::from_json(const std::string& text, const std::string& where) {
  try {
    const json j = json::parse(text);
    QcModel m;
    m.structure = logistic_from(j.at("structure"), where + " /structure");
    m.case_score = logistic_from(j.at("case"), where + " /case");
    m.source = j.value("fitted_on", "");
    return m;
  } catch (const json::exception& e) {
    throw std::runtime_error(where + ": not a QC calibration (" + e.what() + ")");
  }
}

QcResult::QcResult() { confidence.fill(kNaN); }

namespace {
// Structure names separated by spaces ("L4/L5 L4").
std::string level_list(const std::vector<int>& labels) {
  std::string out;
  for (int l : labels) out += (out.empty() ? "" : " ") + std::string(structure_name(l));
  return out;
}

// The structures below the reliability threshold, least confident first: the three worst named
// with their confidence, the rest counted.
void add_low_confidence(QcResult& r, const CaseSignals& c, const QcModel& m) {
  std::vector<std::pair<double, int>> low;
  for (const auto& s : c.structures)
    if (r.confidence[s.label - 1] < m.reliable_from)
      low.emplace_back(r.confidence[s.label - 1], s.label);
  std::sort(low.begin(), low.end());
  std::string text;
  for (std::size_t k = 0; k < low.size() && k < 3; ++k)
    text +=
        (k ? ", " : "") + std::string(structure_name(low[k].second)) + " " + fixed(low[k].first, 2);
  if (low.size() > 3) text += " and " + std::to_string(low.size() - 3) + " more";
  if (!low.empty()) r.reasons.push_back("low_confidence: " + text);
}

// Reasons as "code: words". Those that say the case as a whole is doubtful (outside the training
// range, levels missing inside the chain, out of order or off the spine) set *demote: such a case
// is at best reviewed. Low confidence of single structures and structures cut by the view are
// listed only: their values are marked unreliable, the rest of the case can still pass.
void add_reasons(QcResult& r, const CaseSignals& c, const QcModel& m, bool* demote) {
  for (const auto& f : c.out_of_range) r.reasons.push_back("out_of_range: " + f), *demote = true;
  if (!c.missing.empty())
    r.reasons.push_back("missing_levels: " + level_list(c.missing)), *demote = true;
  std::vector<int> order, outside, cut;
  for (const auto& s : c.structures) {
    if (!s.order_ok) order.push_back(s.label);
    if (!std::isnan(s.off_axis) && s.off_axis > 1.5) outside.push_back(s.label);
    if (s.cut) cut.push_back(s.label);
  }
  if (!order.empty()) r.reasons.push_back("level_order: " + level_list(order)), *demote = true;
  if (!outside.empty())
    r.reasons.push_back("labels_outside_spine: " + level_list(outside)), *demote = true;
  add_low_confidence(r, c, m);
  if (!cut.empty()) r.reasons.push_back("fov_cut: " + level_list(cut));
}
}  // namespace

QcResult assess(const CaseSignals& c, const QcModel& m) {
  QcResult r;
  r.reliable_from = m.reliable_from;
  std::vector<double> conf;
  double worst = 2;
  for (const auto& s : c.structures) {
    const double v = m.structure(structure_features(s, c));
    r.confidence[s.label - 1] = v;
    conf.push_back(v);
    if (v < worst) worst = v, r.worst_label = s.label;
  }
  r.score = c.structures.empty() ? 0.0 : m.case_score(case_features(c, conf));
  bool demote = false;
  add_reasons(r, c, m, &demote);
  if (c.structures.empty()) r.reasons.insert(r.reasons.begin(), "no_structures: nothing found");
  r.verdict = r.score < m.fail_below || c.structures.empty() ? "fail"
              : r.score < m.pass_from || demote              ? "review"
                                                             : "pass";
  return r;
}

std::string qc_record_json(const QcResult& r, const CaseSignals* c) {
  json j;
  j["verdict"] = r.verdict;
  j["score"] = r.score;
  j["reasons"] = r.reasons;
  j["reliable_from"] = r.reliable_from;
  json conf = json::object();
  for (int l = 1; l <= kMaxLabel; ++l)
    if (!std::isnan(r.confidence[l - 1])) conf[structure_name(l)] = r.confidence[l - 1];
  j["confidence"] = conf;
  if (r.worst_label) j["worst_structure"] = structure_name(r.worst_label);
  if (c) {
    json sig = json::object();
    for (const auto& s : c->structures) {
      json f = json::object();
      for (const auto& [k, v] : structure_features(s, *c))
        if (!std::isnan(v)) f[k] = v;
      sig[std::to_string(s.label)] = f;
    }
    j["signals"] = sig;
    std::vector<double> cv;
    for (double v : r.confidence)
      if (!std::isnan(v)) cv.push_back(v);
    j["case_signals"] = case_features(*c, cv);
  }
  return j.dump();
}

QcResult qc_result_from_json(const std::string& text) {
  const json j = json::parse(text);
  QcResult r;
  r.verdict = j.at("verdict").get<std::string>();
  r.score = j.at("score").get<double>();
  r.reasons = j.at("reasons").get<std::vector<std::string>>();
  r.reliable_from = j.value("reliable_from", 0.5);
  for (int l = 1; l <= kMaxLabel; ++l)
    if (j.at("confidence").contains(structure_name(l)))
      r.confidence[l - 1] = j["confidence"][structure_name(l)].get<double>();
  if (j.contains("worst_structure"))
    for (int l = 1; l <= kMaxLabel; ++l)
      if (j["worst_structure"] == structure_name(l)) r.worst_label = l;
  return r;
}

std::string review_csv(const std::vector<std::pair<std::string, QcResult>>& cases) {
  auto rank = [](const std::string& v) { return v == "fail" ? 0 : v == "review" ? 1 : 2; };
  std::vector<const std::pair<std::string, QcResult>*> order;
  for (const auto& c : cases) order.push_back(&c);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) {
    if (rank(a->second.verdict) != rank(b->second.verdict))
      return rank(a->second.verdict) < rank(b->second.verdict);
    if (a->second.score != b->second.score) return a->second.score < b->second.score;
    return a->first < b->first;
  });
  std::string csv = "case,qc,qc_score,reasons,worst_structure,worst_confidence\n";
  auto quote = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    return q + "\"";
  };
  for (const auto* c : order) {
    const QcResult& r = c->second;
    std::string reasons;
    for (const auto& x : r.reasons) reasons += (reasons.empty() ? "" : ";") + x;
    csv += quote(c->first) + "," + r.verdict + "," + fixed(r.score, 4) + "," + quote(reasons) +
           "," + (r.worst_label ? structure_name(r.worst_label) : "") + "," +
           (r.worst_label ? fixed(r.confidence[r.worst_label - 1], 4) : "") + "\n";
  }
  return csv;
}

}  // namespace spineparse::metrics
