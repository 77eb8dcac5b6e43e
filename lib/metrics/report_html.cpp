#include "metrics/report_html.hpp"

#include <cmath>
#include <cstdio>
#include <map>
#include <tuple>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "metrics/measure.hpp"
#include "metrics/overlay.hpp"
#include "spine/labels.hpp"
#include "spineparse/files.hpp"

namespace spineparse::metrics {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += t[v & 63];
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const unsigned v =
        (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// JSON safe inside a <script> element.
std::string script_json(const json& j) {
  std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  for (std::size_t p = 0; (p = s.find("</", p)) != std::string::npos; p += 3)
    s.replace(p, 2, "<\\/");
  return s;
}

// Per case with a measurement record (metrics.measure): its picture, alignment, grade, the
// per-level values and the outliers measurements/summary.json flags for it.
json measures_of(const json& run, const json& pictures) {
  json out = json::object();
  std::map<std::string, json> summaries;  // by the record folder's summary.json
  for (const auto& c : run["cases"]) {
    if (!c.contains("attrs") || !c["attrs"].contains("measurements")) continue;
    const fs::path record = c["attrs"]["measurements"].get<std::string>();
    if (!fs::exists(record)) continue;
    const std::string id = c["id"].get<std::string>();
    const CaseMeasurement m = case_measurement_from_json(read_file(record.string()));
    const fs::path summary_path = record.parent_path().parent_path() / "summary.json";
    if (!summaries.count(summary_path.string()))
      summaries[summary_path.string()] =
          fs::exists(summary_path) ? json::parse(read_file(summary_path.string())) : json();
    const json& summary = summaries[summary_path.string()];
    std::map<std::string, std::vector<std::string>> flagged;  // structure -> columns
    int outliers = 0;
    if (summary.contains("outliers"))
      for (const auto& o : summary["outliers"])
        if (o["case"] == id) {
          flagged[o["structure"].get<std::string>()].push_back(o["column"].get<std::string>());
          ++outliers;
        }
    auto num = [](double v) { return std::isnan(v) ? json(nullptr) : json(v); };
    json levels = json::array();
    int grade_max = -1;
    for (const auto& l : m.levels) {
      if (!l.voxels) continue;
      grade_max = std::max(grade_max, l.height_loss_grade);
      const std::string name = structure_name(l.label);
      levels.push_back({{"label", l.label}, {"structure", name},
                        {"anterior_height_mm", num(l.anterior_height_mm)},
                        {"middle_height_mm", num(l.middle_height_mm)},
                        {"posterior_height_mm", num(l.posterior_height_mm)},
                        {"ap_depth_mm", num(l.ap_depth_mm)}, {"wedge_ratio", num(l.wedge_ratio)},
                        {"biconcavity_ratio", num(l.biconcavity_ratio)},
                        {"height_loss_grade", l.height_loss_grade}, {"dhi", num(l.dhi)},
                        {"note", l.note}, {"outliers", flagged[name]}});
    }
    out[id] = {{"picture", pictures.contains(id) ? pictures[id] : json(nullptr)},
               {"lordosis", num(m.lordosis_l1_s1_deg)}, {"grade_max", grade_max},
               {"outliers", outliers}, {"levels", levels}};
  }
  return out;
}

const char* kPage = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>spineparse report</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f0f0f0}td.l{text-align:left}tr.failed td{background:#fde8e8}
.err{color:#b00;max-width:420px;text-align:left;white-space:pre-wrap}
img.thumb{height:110px;cursor:zoom-in}img.thumb:hover{height:330px}
.kv{display:grid;grid-template-columns:auto auto;gap:2px 16px;width:max-content}
pre{background:#f7f7f7;padding:8px;font-size:12px;overflow:auto;max-height:400px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px}
details.measures summary{cursor:pointer;text-align:left}details.measures table{margin-top:6px}
details.measures img{display:block;margin-top:6px;max-width:520px}.flag{color:#b00;font-weight:bold}
</style></head><body>
<h1>spineparse run report</h1>
<div id="summary" class="kv"></div>
<h2>Per-structure Dice</h2>
<div id="chart"></div>
<table id="structures"></table>
<h2>Cases</h2>
<table id="cases"><thead><tr><th>case</th><th>status</th><th>Dice (all)</th><th>vertebrae</th><th>discs</th><th>ASSD mm</th><th>structures (ml)</th><th>seconds per stage</th><th>overlay</th><th>measurements</th></tr></thead><tbody></tbody></table>
<h2>Graph and plugins</h2>
<div id="plugins"></div>
<pre id="graph"></pre>
<script>
const RUN = @RUN@;
const SUMMARY = @SUMMARY@;
const OVERLAYS = @OVERLAYS@;
const COLOURS = @COLOURS@;
const MEASURES = @MEASURES@;
function el(tag, attrs, ...kids) { const e = document.createElement(tag); Object.assign(e, attrs || {}); for (const k of kids) e.append(k); return e; }
function f(x, d) { return (x === null || x === undefined || Number.isNaN(x)) ? '' : Number(x).toFixed(d === undefined ? 3 : d); }
const sum = document.getElementById('summary');
const add = (k, v) => { sum.append(el('b', {textContent: k}), el('span', {textContent: v})); };
add('graph', RUN.graph_file); add('input', RUN.input_dir); add('output', RUN.output_dir);
add('cases', `${RUN.counts.total} (${RUN.counts.ok} ok, ${RUN.counts.failed} failed, ${RUN.counts.skipped} skipped)`);
add('wall time', `${f(RUN.wall_s, 1)} s (${f(RUN.cases_per_s, 3)} cases/s, ${RUN.threads} threads)`);
for (const [id, n] of Object.entries(RUN.nodes || {})) {
  if (n.precision) add(`network ${id}`, `${n.precision} on ${n.device}${n.cpu ? ' (' + n.cpu + ')' : ''}: ${n.precision_reason || ''}`);
}
if (SUMMARY) {
  for (const g of ['vertebrae', 'discs', 'all']) { const s = SUMMARY.dice[g]; if (s.mean !== null) add(`Dice ${g}`, `${f(s.mean)} ± ${f(s.std)}`); }
  add('missed / spurious structures', `${SUMMARY.missed_structures} / ${SUMMARY.spurious_structures}`);
  if (SUMMARY.refinement) add('Dice before / after refinement', `${f(SUMMARY.refinement.dice_before.mean)} / ${f(SUMMARY.refinement.dice_after.mean)}`);
  const st = document.getElementById('structures');
  st.append(el('tr', {}, ...['label', 'structure', 'Dice', '±', 'precision', 'recall', 'ASSD mm', 'HD95 mm', 'cases', 'missed'].map(h => el('th', {textContent: h}))));
  const W = 640, bh = 14, svgns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(svgns, 'svg');
  svg.setAttribute('width', W + 120); svg.setAttribute('height', SUMMARY.per_structure.length * (bh + 3) + 20);
  SUMMARY.per_structure.forEach((p, i) => {
    st.append(el('tr', {}, el('td', {textContent: p.label}), el('td', {className: 'l'}, el('span', {className: 'swatch', style: `background:${COLOURS[p.label]}`}), p.structure),
      el('td', {textContent: f(p.dice.mean)}), el('td', {textContent: f(p.dice.std)}), el('td', {textContent: f(p.precision.mean)}),
      el('td', {textContent: f(p.recall.mean)}), el('td', {textContent: f(p.assd_mm.mean, 2)}), el('td', {textContent: f(p.hd95_mm.mean, 2)}),
      el('td', {textContent: p.cases_with_structure}), el('td', {textContent: p.missed})));
    const y = 10 + i * (bh + 3), m = p.dice.mean || 0;
    const t = document.createElementNS(svgns, 'text'); t.setAttribute('x', 0); t.setAttribute('y', y + bh - 3); t.setAttribute('font-size', 11); t.textContent = p.structure; svg.append(t);
    const r = document.createElementNS(svgns, 'rect'); r.setAttribute('x', 60); r.setAttribute('y', y); r.setAttribute('height', bh); r.setAttribute('width', Math.max(0, m) * W); r.setAttribute('fill', COLOURS[p.label]); r.setAttribute('stroke', '#555'); svg.append(r);
    if (p.dice.std) { const l = document.createElementNS(svgns, 'line'); l.setAttribute('x1', 60 + Math.max(0, m - p.dice.std) * W); l.setAttribute('x2', 60 + Math.min(1, m + p.dice.std) * W); l.setAttribute('y1', y + bh / 2); l.setAttribute('y2', y + bh / 2); l.setAttribute('stroke', '#000'); svg.append(l); }
    const v = document.createElementNS(svgns, 'text'); v.setAttribute('x', 66 + W); v.setAttribute('y', y + bh - 3); v.setAttribute('font-size', 11); v.textContent = f(p.dice.mean); svg.append(v);
  });
  document.getElementById('chart').append(svg);
} else {
  document.getElementById('chart').textContent = 'No metrics: the graph has no metrics.evaluate node or no case had a mask.';
}
const tb = document.querySelector('#cases tbody');
for (const c of RUN.cases) {
  const m = c.metrics || {};
  const secs = Object.entries(c.stage_seconds || {}).map(([k, v]) => `${k} ${f(v, 2)}`).join('\n');
  const status = el('td', {className: 'l'}, c.status);
  if (c.error) status.append(el('div', {className: 'err', textContent: `[${c.error.node}] ${c.error.message}`}));
  for (const w of c.warnings || []) status.append(el('div', {className: 'warn', textContent: `warning: ${w}`}));
  const img = OVERLAYS[c.id] ? el('img', {className: 'thumb', src: OVERLAYS[c.id], alt: c.id}) : '';
  tb.append(el('tr', {className: 'case ' + c.status}, el('td', {className: 'l', textContent: c.id}), status,
    el('td', {textContent: f(m.dice_all)}), el('td', {textContent: f(m.dice_vertebrae)}), el('td', {textContent: f(m.dice_discs)}),
    el('td', {textContent: f(m.assd_mm, 2)}),
    el('td', {textContent: m.structures_found === undefined ? '' : `${m.structures_found} (${f(m.labelled_volume_ml, 1)})`}),
    el('td', {className: 'l'}, el('pre', {textContent: secs})), el('td', {}, img), measureCell(c.id)));
}
// Per case: a line of the alignment, grade and outliers; opened, the picture with the endplates
// and heights drawn and the per-level table (built when first opened).
function measureCell(id) {
  const m = MEASURES[id];
  if (!m) return el('td');
  const head = [`L1-S1 lordosis ${m.lordosis === null ? 'n/a' : f(m.lordosis, 1) + '\u00b0'}`];
  if (m.grade_max > 0) head.push(`Genant grade ${m.grade_max}`);
  const d = el('details', {className: 'measures', id: `measures-${id}`}, el('summary', {textContent: head.join(' \u00b7 ')}));
  if (m.outliers) d.querySelector('summary').append(el('span', {className: 'flag', textContent: ` \u00b7 ${m.outliers} outlier values`}));
  d.addEventListener('toggle', () => {
    if (!d.open || d.dataset.built) return;
    d.dataset.built = '1';
    if (m.picture) d.append(el('img', {src: m.picture, alt: `${id} measurements`}));
    const t = el('table');
    const cols = ['structure', 'Ha mm', 'Hm mm', 'Hp mm', 'depth mm', 'Ha/Hp', 'Hm/Hp', 'grade', 'DHI', 'note'];
    t.append(el('tr', {}, ...cols.map(h => el('th', {textContent: h}))));
    for (const r of m.levels) {
      const cells = [el('td', {className: 'l'}, el('span', {className: 'swatch', style: `background:${COLOURS[r.label]}`}), r.structure)];
      for (const k of ['anterior_height_mm', 'middle_height_mm', 'posterior_height_mm', 'ap_depth_mm'])
        cells.push(el('td', {textContent: f(r[k], 1), className: r.outliers.includes(k) ? 'flag' : ''}));
      for (const k of ['wedge_ratio', 'biconcavity_ratio'])
        cells.push(el('td', {textContent: f(r[k], 2), className: r.outliers.includes(k) ? 'flag' : ''}));
      cells.push(el('td', {textContent: r.height_loss_grade >= 0 ? r.height_loss_grade : '', className: r.height_loss_grade > 0 ? 'flag' : ''}));
      cells.push(el('td', {textContent: f(r.dhi, 2), className: r.outliers.includes('dhi') ? 'flag' : ''}));
      cells.push(el('td', {className: 'l', textContent: [r.note, ...r.outliers.map(o => 'outlier: ' + o)].filter(x => x).join('; ')}));
      t.append(el('tr', {}, ...cells));
    }
    d.append(t);
  });
  return el('td', {className: 'l'}, d);
}
// report.html#measures-<case> opens that case's measurements.
if (location.hash.startsWith('#measures-')) {
  const d = document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (d) { d.open = true; d.dispatchEvent(new Event('toggle')); }
}
document.getElementById('plugins').textContent = RUN.plugins.map(p => `${p.name} ${p.version} (${p.path})`).join(' · ');
document.getElementById('graph').textContent = JSON.stringify(RUN.graph, null, 2);
</script></body></html>
)HTML";

}  // namespace

std::string write_report_html(const std::string& run_json_path, std::int64_t embed_bytes) {
  const json run = json::parse(read_file(run_json_path));
  const fs::path dir = fs::path(run_json_path).parent_path();
  json summary = nullptr;
  if (fs::exists(dir / "metrics" / "summary.json"))
    summary = json::parse(read_file((dir / "metrics" / "summary.json").string()));
  // (case id, attr, picture): the overlays and the measurement pictures the cases name.
  std::vector<std::tuple<std::string, std::string, fs::path>> pictures;
  std::int64_t total = 0;
  for (const auto& c : run["cases"]) {
    for (const char* attr : {"overlay", "measure_overlay"}) {
      if (!c.contains("attrs") || !c["attrs"].contains(attr)) continue;
      const fs::path p = c["attrs"][attr].get<std::string>();
      std::error_code ec;
      const auto size = fs::file_size(p, ec);
      if (ec) continue;
      pictures.emplace_back(c["id"].get<std::string>(), attr, p);
      total += static_cast<std::int64_t>(size);
    }
  }
  const bool embed = total <= embed_bytes;
  json overlays = json::object(), measure_pictures = json::object();
  for (const auto& [id, attr, p] : pictures) {
    (attr == "overlay" ? overlays : measure_pictures)[id] =
        embed ? "data:image/png;base64," + base64(read_file(p.string()))
              : fs::proximate(p, dir).generic_string();
  }
  json colours = json::array();
  for (int l = 0; l < kNumClasses; ++l) {
    auto c = label_colour(l);
    char buf[16];
    std::snprintf(buf, sizeof buf, "#%02x%02x%02x", c[0], c[1], c[2]);
    colours.push_back(buf);
  }
  std::string page = kPage;
  auto put = [&](const std::string& key, const std::string& value) {
    const auto p = page.find(key);
    page.replace(p, key.size(), value);
  };
  put("@RUN@", script_json(run));
  put("@SUMMARY@", script_json(summary));
  put("@OVERLAYS@", script_json(overlays));
  put("@COLOURS@", script_json(colours));
  put("@MEASURES@", script_json(measures_of(run, measure_pictures)));
  const std::string out = (dir / "report.html").string();
  write_file_atomic(out, page);
  return out;
}

}  // namespace spineparse::metrics
