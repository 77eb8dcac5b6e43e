// The cohort files of the measurements: CSVs, per-case JSON records, summary.json, label maps.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "metrics/measure.hpp"
#include "metrics/measurement_columns.hpp"
#include "spine/labels.hpp"
#include "spineparse/files.hpp"
#include "spineparse/text.hpp"

namespace spineparse::metrics {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string num(double v, const char* fmt = "%.4g") {
  if (std::isnan(v)) return "";
  char b[40];
  std::snprintf(b, sizeof b, fmt, v);
  return b;
}
std::string csv_text(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

std::string angle_column(int disc) {  // angle_L5_S_deg for disc 11
  std::string n = structure_name(disc);
  std::replace(n.begin(), n.end(), '/', '_');
  return "angle_" + n + "_deg";
}

json number(double v) { return std::isnan(v) ? json(nullptr) : json(v); }
double from(const json& j) { return j.is_null() ? kNaN : j.get<double>(); }

json endplate_json(const Endplate& e) {
  if (!e.valid) return nullptr;
  return {{"normal_deg", e.normal_deg}, {"anterior", e.anterior}, {"posterior", e.posterior}};
}
Endplate endplate_from(const json& j) {
  Endplate e;
  if (j.is_null()) return e;
  e.valid = true;
  e.normal_deg = j["normal_deg"].get<double>();
  e.anterior = j["anterior"].get<std::array<double, 3>>();
  e.posterior = j["posterior"].get<std::array<double, 3>>();
  return e;
}

struct Stats {
  double median = kNaN, q1 = kNaN, q3 = kNaN, mad = kNaN;
  int n = 0;
};
double quantile(std::vector<double> v, double q) {  // numpy's linear interpolation
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto i = static_cast<std::size_t>(std::floor(pos));
  const double f = pos - static_cast<double>(i);
  return i + 1 < v.size() ? v[i] * (1 - f) + v[i + 1] * f : v[i];
}
Stats stats_of(const std::vector<double>& v) {
  Stats s;
  s.n = static_cast<int>(v.size());
  if (v.empty()) return s;
  s.median = quantile(v, 0.5);
  s.q1 = quantile(v, 0.25);
  s.q3 = quantile(v, 0.75);
  std::vector<double> dev;
  for (double x : v) dev.push_back(std::abs(x - s.median));
  s.mad = 1.4826 * quantile(dev, 0.5);
  return s;
}
// More than 3 scaled MADs from the median, with at least kMinOutlierCases values; the spread is
// at least `floor` (5 % of the median for lengths and ratios, 2 degrees for angles: the
// measurement's own accuracy), so that a small cohort of similar cases flags no noise.
constexpr int kMinOutlierCases = 8;
bool outlier(double x, const Stats& s, double floor) {
  const double spread = std::max(s.mad, floor);
  return s.n >= kMinOutlierCases && spread > 0 && !std::isnan(x) &&
         std::abs(x - s.median) > 3 * spread;
}

}  // namespace

std::string measurements_csv_header() {
  std::string h = "case,label,structure,complete,confidence,reliable";
  for (const auto& c : measurement_columns()) h += std::string(",") + c.name;
  return h + ",superior_endplate_deg,inferior_endplate_deg,centroid_x_mm,centroid_y_mm,"
             "centroid_z_mm,outliers,note\n";
}

std::string measurements_csv_rows(const CaseMeasurement& m,
                                  const std::vector<std::string>& outlier_columns) {
  std::string out;
  for (const auto& l : m.levels) {
    std::string row = csv_text(m.id) + "," + std::to_string(l.label) + "," +
                      structure_name(l.label) + "," + (l.voxels ? (l.complete ? "1" : "0") : "") +
                      "," + num(l.confidence, "%.3f") + "," +
                      (l.voxels ? (l.reliable ? "1" : "0") : "");
    for (const auto& c : measurement_columns()) {
      row += ",";
      if (!c.integer) row += num(l.*c.real);
      else if (l.*c.integer >= 0) row += std::to_string(l.*c.integer);
    }
    row += "," + num(l.superior.valid ? l.superior.normal_deg : kNaN) + "," +
           num(l.inferior.valid ? l.inferior.normal_deg : kNaN);
    for (int r = 0; r < 3; ++r) row += "," + num(l.voxels ? l.centroid[r] : kNaN, "%.2f");
    std::string flags;
    const std::string prefix = std::to_string(l.label) + ":";
    for (const auto& o : outlier_columns)
      if (o.rfind(prefix, 0) == 0) flags += (flags.empty() ? "" : ";") + o.substr(prefix.size());
    out += row + "," + csv_text(flags) + "," + csv_text(l.note) + "\n";
  }
  return out;
}

std::string alignment_csv_header() {
  std::string h = "case,lordosis_l1_s1_deg,sacral_slope_deg";
  for (int d = 11; d <= kMaxLabel; ++d) h += "," + angle_column(d);
  return h + "\n";
}

std::string alignment_csv_row(const CaseMeasurement& m) {
  std::string row = csv_text(m.id) + "," + num(m.lordosis_l1_s1_deg) + "," +
                    num(m.sacral_slope_deg);
  for (double a : m.segmental_deg) row += "," + num(a);
  return row + "\n";
}

std::string case_measurement_to_json(const CaseMeasurement& m) {
  json j;
  j["case"] = m.id;
  j["lordosis_l1_s1_deg"] = number(m.lordosis_l1_s1_deg);
  j["sacral_slope_deg"] = number(m.sacral_slope_deg);
  j["segmental_deg"] = json::array();
  for (double a : m.segmental_deg) j["segmental_deg"].push_back(number(a));
  j["levels"] = json::array();
  for (const auto& l : m.levels) {
    json r = {{"label", l.label},         {"structure", structure_name(l.label)},
              {"voxels", l.voxels},       {"complete", l.complete},
              {"centroid", l.centroid},   {"superior", endplate_json(l.superior)},
              {"inferior", endplate_json(l.inferior)}, {"note", l.note},
              {"confidence", number(l.confidence)}, {"reliable", l.reliable}};
    for (const auto& c : measurement_columns())
      r[c.name] = c.integer ? json(l.*c.integer) : number(l.*c.real);
    j["levels"].push_back(r);
  }
  return json_text(j, 1);
}

CaseMeasurement case_measurement_from_json(const std::string& text) {
  const json j = json::parse(text);
  CaseMeasurement m;
  m.id = j["case"].get<std::string>();
  m.lordosis_l1_s1_deg = from(j["lordosis_l1_s1_deg"]);
  m.sacral_slope_deg = from(j["sacral_slope_deg"]);
  for (std::size_t i = 0; i < m.segmental_deg.size(); ++i)
    m.segmental_deg[i] = from(j["segmental_deg"].at(i));
  for (const auto& r : j["levels"]) {
    LevelMeasurement l;
    l.label = r["label"].get<int>();
    l.voxels = r["voxels"].get<std::int64_t>();
    l.complete = r["complete"].get<bool>();
    l.centroid = r["centroid"].get<std::array<double, 3>>();
    l.superior = endplate_from(r["superior"]);
    l.inferior = endplate_from(r["inferior"]);
    l.note = r["note"].get<std::string>();
    l.confidence = r.contains("confidence") ? from(r["confidence"]) : kNaN;
    l.reliable = r.value("reliable", true);
    for (const auto& c : measurement_columns())
      c.set(l, c.integer ? r[c.name].get<int>() : from(r[c.name]));
    m.levels.push_back(l);
  }
  return m;
}

std::string write_measurement_reports(const std::vector<CaseMeasurement>& cases,
                                      const std::string& dir) {
  json summary;
  summary["cases"] = cases.size();
  summary["reliable_only"] =
      "medians, IQRs and outliers use values of reliable structures (metrics.qc's confidence; "
      "endplates that agree with their discs)";
  summary["outlier_rule"] =
      "more than 3 x max(1.4826 MAD, floor) from the level's median, with at least " +
      std::to_string(kMinOutlierCases) + " values; floor: 5 % of the median (lengths, ratios), "
      "2 degrees (angles)";
  json levels = json::object(), outliers = json::array();
  std::map<std::string, std::vector<std::string>> flagged;  // case -> "label:column"
  for (int label = 1; label <= kMaxLabel; ++label) {
    json per = json::object();
    for (const auto& col : measurement_columns()) {
      if (!col.summarised) continue;
      std::vector<double> v;
      for (const auto& c : cases) {
        const double x = col.value(c.level(label));
        if (!std::isnan(x) && c.reliable(label)) v.push_back(x);
      }
      const Stats s = stats_of(v);
      if (!s.n) continue;
      per[col.name] = {{"n", s.n}, {"median", s.median}, {"q1", s.q1}, {"q3", s.q3}};
      for (const auto& c : cases) {
        const double x = c.reliable(label) ? col.value(c.level(label)) : kNaN;
        if (!outlier(x, s, 0.05 * std::abs(s.median))) continue;
        flagged[c.id].push_back(std::to_string(label) + ":" + col.name);
        outliers.push_back({{"case", c.id}, {"structure", structure_name(label)},
                            {"column", col.name}, {"value", x}, {"median", s.median}});
      }
    }
    if (!per.empty()) levels[structure_name(label)] = per;
  }
  json align = json::object();
  // Angles resting on an unreliable structure take no part (get returns NaN for them).
  auto align_stats = [&](const std::string& name, auto get) {
    std::vector<double> v;
    for (const auto& c : cases)
      if (!std::isnan(get(c))) v.push_back(get(c));
    const Stats s = stats_of(v);
    if (!s.n) return;
    align[name] = {{"n", s.n}, {"median", s.median}, {"q1", s.q1}, {"q3", s.q3}};
    for (const auto& c : cases)
      if (outlier(get(c), s, 2.0))
        outliers.push_back({{"case", c.id}, {"structure", "spine"}, {"column", name},
                            {"value", get(c)}, {"median", s.median}});
  };
  align_stats("lordosis_l1_s1_deg", [](const CaseMeasurement& c) {
    return c.lordosis_reliable() ? c.lordosis_l1_s1_deg : kNaN;
  });
  align_stats("sacral_slope_deg",
              [](const CaseMeasurement& c) { return c.reliable(1) ? c.sacral_slope_deg : kNaN; });
  for (int d = 11; d <= kMaxLabel; ++d)
    align_stats(angle_column(d), [d](const CaseMeasurement& c) {
      return c.segmental_reliable(d - 10) ? c.segmental_deg[d - 11] : kNaN;
    });
  summary["levels"] = levels;
  summary["alignment"] = align;
  summary["outliers"] = outliers;

  std::string csv = measurements_csv_header(), acsv = alignment_csv_header();
  for (const auto& c : cases) {
    csv += measurements_csv_rows(c, flagged[c.id]);
    acsv += alignment_csv_row(c);
  }
  fs::create_directories(dir);
  write_file_atomic((fs::path(dir) / "measurements.csv").string(), csv);
  write_file_atomic((fs::path(dir) / "alignment.csv").string(), acsv);
  const std::string text = json_text(summary, 2) + "\n";
  write_file_atomic((fs::path(dir) / "summary.json").string(), text);
  return text;
}

std::array<std::uint8_t, 256> parse_label_map(const std::string& spec) {
  std::array<std::uint8_t, 256> map{};
  std::vector<std::pair<std::string, std::string>> pairs;
  if (fs::is_regular_file(spec)) {
    json j;
    try {
      j = json::parse(read_file(spec));
    } catch (const json::exception& e) {
      throw std::runtime_error("labels map " + spec + ": not JSON: " + e.what());
    }
    if (!j.is_object())
      throw std::runtime_error("labels map " + spec + ": expected {\"src\": dst, ...}");
    for (const auto& [k, v] : j.items())
      pairs.emplace_back(k, v.is_number_integer() ? std::to_string(v.get<long>()) : v.dump());
  } else {
    std::size_t start = 0;
    while (start <= spec.size()) {
      const std::size_t end = std::min(spec.find(',', start), spec.size());
      const std::string item = spec.substr(start, end - start);
      const std::size_t colon = item.find(':');
      if (colon == std::string::npos)
        throw std::runtime_error("labels map: '" + item + "' is not src:dst (or a JSON file)");
      pairs.emplace_back(item.substr(0, colon), item.substr(colon + 1));
      start = end + 1;
    }
  }
  for (const auto& [s, d] : pairs) {
    auto value = [&](const std::string& t, int max) {
      std::size_t used = 0;
      int x = -1;
      try {
        x = std::stoi(t, &used);
      } catch (const std::exception&) {
      }
      if (used != t.size() || x < 0 || x > max)
        throw std::runtime_error("labels map: '" + s + ":" + d + "': values are 0-255 to 0-" +
                                 std::to_string(kMaxLabel));
      return x;
    };
    map[value(s, 255)] = static_cast<std::uint8_t>(value(d, kMaxLabel));
  }
  return map;
}

NdArrayPtr apply_label_map(const NdArray& labels, const std::array<std::uint8_t, 256>& map) {
  auto out = NdArray::make<std::uint8_t>(labels.shape());
  const auto* l = labels.data<std::uint8_t>();
  auto* o = out->data<std::uint8_t>();
  for (std::int64_t i = 0; i < labels.numel(); ++i) o[i] = map[l[i]];
  return out;
}

}  // namespace spineparse::metrics

namespace spineparse::metrics {

const std::vector<MeasurementColumn>& measurement_columns() {
  using L = LevelMeasurement;
  const char* local = kMeasurementCodingScheme;
  static const std::vector<MeasurementColumn> c = {
      {"anterior_height_mm", &L::anterior_height_mm, nullptr, "mm", "all",
       "Ha: height between the fitted endplates at the anterior border", "AH", local,
       "Anterior height", true, "Ha mm", 1},
      {"middle_height_mm", &L::middle_height_mm, nullptr, "mm", "all",
       "Hm: height midway between the borders", "MH", local, "Middle height", true, "Hm mm", 1},
      {"posterior_height_mm", &L::posterior_height_mm, nullptr, "mm", "all",
       "Hp: height at the posterior border", "PH", local, "Posterior height", true, "Hp mm", 1},
      {"ap_depth_mm", &L::ap_depth_mm, nullptr, "mm", "all",
       "distance between the anterior and posterior borders", "APD", local,
       "Anteroposterior depth", true, "depth mm", 1},
      {"wedge_ratio", &L::wedge_ratio, nullptr, "1", "vertebrae", "Ha / Hp", "WR", local,
       "Wedge ratio", true, "Ha/Hp", 2},
      {"biconcavity_ratio", &L::biconcavity_ratio, nullptr, "1", "vertebrae", "Hm / Hp", "BR",
       local, "Biconcavity ratio", true, "Hm/Hp", 2},
      {"height_loss_grade", nullptr, &L::height_loss_grade, "1", "vertebrae",
       "Genant's semi-quantitative grade 0-3 (blank: not measurable)", "GHL", local,
       "Genant height loss grade", false, "grade", 0},
      {"dhi", &L::dhi, nullptr, "1", "discs",
       "disc height index: (Ha + Hm + Hp) of the disc / of the body above", "DHI", local,
       "Disc height index", true, "DHI", 2},
      {"disc_to_body_ratio", &L::disc_to_body_ratio, nullptr, "1", "discs",
       "disc Hm / mean Hm of the adjacent bodies", "DBR", local, "Disc to body height ratio",
       true, nullptr, 0},
      {"farfan_index", &L::farfan_index, nullptr, "1", "discs", "(Ha + Hp) / depth", "FI", local,
       "Farfan index", true, nullptr, 0},
      {"volume_ml", &L::volume_ml, nullptr, "ml", "all", "the structure's labelled volume",
       "118565006", "SCT", "Volume", true, nullptr, 0},
      {"mean_intensity", &L::mean_intensity, nullptr, "1", "all",
       "mean intensity in the file's units (with an image)", "373098007", "SCT", "Mean", true,
       nullptr, 0},
      {"median_intensity", &L::median_intensity, nullptr, "1", "all",
       "median intensity in the file's units (with an image)", nullptr, nullptr, nullptr, true,
       nullptr, 0},
      {"signal_ratio", &L::signal_ratio, nullptr, "1", "discs",
       "disc mean intensity / mean of the adjacent bodies' (with an image)", "SR", local,
       "Signal ratio to adjacent bodies", true, nullptr, 0}};
  return c;
}

double MeasurementColumn::value(const LevelMeasurement& l) const {
  if (real) return l.*real;
  return l.*integer >= 0 ? l.*integer : kNaN;
}

void MeasurementColumn::set(LevelMeasurement& l, double v) const {
  if (real) l.*real = v;
  else l.*integer = std::isnan(v) ? -1 : static_cast<int>(v);
}

std::string measurement_columns_markdown() {
  std::string out = "| column | unit | structures | meaning | DICOM SR concept |\n|---|---|---|---|---|\n";
  for (const auto& c : measurement_columns()) {
    const std::string sr = c.sr_code ? std::string(c.sr_code) + " (" + c.sr_scheme + ") " +
                                           c.sr_meaning
                                     : "not in the SR";
    out += "| `" + std::string(c.name) + "` | " + c.unit + " | " + c.applies_to + " | " +
           c.description + " | " + sr + " |\n";
  }
  return out;
}

}  // namespace spineparse::metrics
