#include "metrics/report_html.hpp"

#include <cmath>
#include <cstdio>
#include <map>
#include <tuple>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "metrics/measure.hpp"
#include "metrics/measurement_columns.hpp"
#include "metrics/case_attributes.hpp"
#include "metrics/html_util.hpp"
#include "metrics/overlay.hpp"
#include "spine/labels.hpp"
#include "spineparse/files.hpp"

namespace spineparse::metrics {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Per case with a measurement record (metrics.measure): its picture, alignment, grade, the
// per-level values and the outliers measurements/summary.json flags for it.
// The report's level table: [column, heading, decimals, integer grade] per column it shows.
json level_columns_json() {
  json out = json::array();
  for (const auto& c : measurement_columns())
    if (c.report) out.push_back({c.name, c.report, c.report_decimals, c.integer != nullptr});
  return out;
}

json measures_of(const json& run, const json& pictures) {
  json out = json::object();
  std::map<std::string, json> summaries;  // by the record folder's summary.json
  for (const auto& c : run["cases"]) {
    if (!c.contains("attrs") || !c["attrs"].contains(kMeasurementsAttr)) continue;
    const fs::path record = c["attrs"][kMeasurementsAttr].get<std::string>();
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
      if (l.reliable) grade_max = std::max(grade_max, l.height_loss_grade);
      const std::string name = structure_name(l.label);
      json level = {{"label", l.label},         {"structure", name},
                    {"note", l.note},           {"outliers", flagged[name]},
                    {"confidence", num(l.confidence)}, {"reliable", l.reliable}};
      for (const auto& c : measurement_columns())
        if (c.report) level[c.name] = c.integer ? json(l.*c.integer) : num(l.*c.real);
      levels.push_back(level);
    }
    out[id] = {{"picture", pictures.contains(id) ? pictures[id] : json(nullptr)},
               {"lordosis", num(m.lordosis_reliable() ? m.lordosis_l1_s1_deg : NAN)},
               {"grade_max", grade_max},
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
#cases th{cursor:pointer;user-select:none}#cases th.asc::after{content:" \25b2"}#cases th.desc::after{content:" \25bc"}
tr.case{cursor:pointer}tr.case:hover td{background:#f4f8ff}tr.detail>td{background:#fafafa;text-align:left}
.err{color:#b00;text-align:left;white-space:pre-wrap}.warn{color:#a60}
.kv{display:grid;grid-template-columns:auto auto;gap:2px 16px;width:max-content}
pre{background:#f7f7f7;padding:8px;font-size:12px;overflow:auto;max-height:400px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px}
.flag{color:#b00;font-weight:bold}.pics img{max-height:330px;margin:4px 8px 4px 0;vertical-align:top}
.measures img{display:block;margin:6px 0;max-width:520px}.measures table{margin:6px 0}
iframe.viewer{width:100%;height:640px;border:1px solid #999;background:#111}
#filters{margin:6px 0}#filters input{width:220px}
.qc-pass{color:#176b2c}.qc-review{color:#a65f00;font-weight:bold}.qc-fail{color:#b00;font-weight:bold}
.unsure{color:#888}#review td.l{max-width:720px}
</style></head><body>
<h1>spineparse run report</h1>
<div id="summary" class="kv"></div>
<div id="review"></div>
<div id="problems"></div>
<h2>Time per case, by stage</h2>
<div id="timing"></div>
<h2>Per-structure Dice</h2>
<div id="chart"></div>
<table id="structures"></table>
<h2>Cases</h2>
<div id="filters"><input id="filter" placeholder="filter: case id, status, warning"> <select id="status"><option value="">all</option><option>ok</option><option>failed</option><option>skipped</option></select> <span id="shown"></span> <span style="color:#777">click a row for its pictures, measurements and viewer</span></div>
<table id="cases"><thead><tr></tr></thead><tbody></tbody></table>
<h2>Graph and plugins</h2>
<div id="plugins"></div>
<pre id="graph"></pre>
<script>
const RUN = @RUN@;
const SUMMARY = @SUMMARY@;
const OVERLAYS = @OVERLAYS@;
const COLOURS = @COLOURS@;
const MEASURES = @MEASURES@;
const LEVEL_COLUMNS = @LEVEL_COLUMNS@;
const VIEWERS = @VIEWERS@;
function el(tag, attrs, ...kids) { const e = document.createElement(tag); Object.assign(e, attrs || {}); for (const k of kids) e.append(k); return e; }
function f(x, d) { return (x === null || x === undefined || Number.isNaN(x)) ? '' : Number(x).toFixed(d === undefined ? 3 : d); }
const svgns = 'http://www.w3.org/2000/svg';
function svgEl(tag, attrs, text) { const e = document.createElementNS(svgns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text !== undefined) e.textContent = text; return e; }
// Summary first: the run, the cohort's scores, failures with their reasons, warnings.
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
}
// Quality control (metrics.qc): the verdicts counted at the top, the cases to review first.
const QC_RANK = {fail: 0, review: 1, pass: 2};
const judged = RUN.cases.filter(c => c.qc);
if (judged.length) {
  const n = v => judged.filter(c => c.qc.verdict === v).length;
  add('quality control', `${n('pass')} pass, ${n('review')} review, ${n('fail')} fail (qc/review.csv)`);
  const list = judged.filter(c => c.qc.verdict !== 'pass').sort((a, b) => (QC_RANK[a.qc.verdict] - QC_RANK[b.qc.verdict]) || (a.qc.score - b.qc.score));
  const box = document.getElementById('review');
  box.append(el('h2', {textContent: `To review (${list.length} of ${judged.length} cases, worst first)`}));
  if (!list.length) box.append(el('p', {textContent: 'Every case passed quality control.'}));
  else {
    const t = el('table', {id: 'review-list'});
    t.append(el('tr', {}, ...['case', 'QC', 'score', 'reasons', 'least confident'].map(h => el('th', {textContent: h}))));
    for (const c of list) {
      const a = el('a', {href: `#case=${encodeURIComponent(c.id)}`, textContent: c.id});
      a.addEventListener('click', () => { const r = rows.find(x => x.c.id === c.id); if (r && r.detail.hidden) toggle(r.c, r.detail); });
      const worst = c.qc.worst_structure ? `${c.qc.worst_structure} ${f(c.qc.confidence[c.qc.worst_structure], 2)}` : '';
      t.append(el('tr', {}, el('td', {className: 'l'}, a), el('td', {className: 'l qc-' + c.qc.verdict, textContent: c.qc.verdict}),
        el('td', {textContent: f(c.qc.score, 3)}), el('td', {className: 'l', textContent: c.qc.reasons.join('; ')}), el('td', {className: 'l', textContent: worst})));
    }
    box.append(t);
  }
}
const failed = RUN.cases.filter(c => c.error), warned = RUN.cases.filter(c => (c.warnings || []).length);
const problems = document.getElementById('problems');
if (failed.length) {
  problems.append(el('h2', {textContent: `Failures (${failed.length})`}));
  const ul = el('ul');
  for (const c of failed) ul.append(el('li', {className: 'err', textContent: `${c.id}: [${c.error.node}] ${c.error.message}`}));
  problems.append(ul);
}
if (warned.length) {
  problems.append(el('h2', {textContent: `Warnings (${warned.length} cases)`}));
  const ul = el('ul');
  for (const c of warned) for (const w of c.warnings) ul.append(el('li', {className: 'warn', textContent: `${c.id}: ${w}`}));
  problems.append(ul);
}
// One chart of the run's time: mean seconds per case in each stage, in graph order.
(() => {
  const order = (RUN.graph && RUN.graph.nodes ? RUN.graph.nodes.map(n => n.id) : []);
  const tot = {}, cnt = {};
  for (const c of RUN.cases) for (const [k, v] of Object.entries(c.stage_seconds || {})) { tot[k] = (tot[k] || 0) + v; cnt[k] = (cnt[k] || 0) + 1; }
  const ids = [...order.filter(k => k in tot), ...Object.keys(tot).filter(k => !order.includes(k))];
  if (!ids.length) { document.getElementById('timing').textContent = 'no stage times recorded'; return; }
  const mean = ids.map(k => tot[k] / cnt[k]), top = Math.max(...mean, 1e-9), W = 520, bh = 13;
  const svg = svgEl('svg', {width: W + 200, height: ids.length * (bh + 3) + 10, id: 'timing-chart'});
  ids.forEach((k, i) => {
    const y = 4 + i * (bh + 3);
    svg.append(svgEl('text', {x: 0, y: y + bh - 2, 'font-size': 11}, k));
    svg.append(svgEl('rect', {x: 100, y, height: bh, width: Math.max(1, mean[i] / top * W), fill: '#6a8fc8'}));
    svg.append(svgEl('text', {x: 106 + mean[i] / top * W, y: y + bh - 2, 'font-size': 11}, `${f(mean[i], 3)} s`));
  });
  document.getElementById('timing').append(svg);
})();
if (SUMMARY) {
  const st = document.getElementById('structures');
  st.append(el('tr', {}, ...['label', 'structure', 'Dice', '±', 'precision', 'recall', 'ASSD mm', 'HD95 mm', 'cases', 'missed'].map(h => el('th', {textContent: h}))));
  const W = 640, bh = 14;
  const svg = svgEl('svg', {width: W + 120, height: SUMMARY.per_structure.length * (bh + 3) + 20});
  SUMMARY.per_structure.forEach((p, i) => {
    st.append(el('tr', {}, el('td', {textContent: p.label}), el('td', {className: 'l'}, el('span', {className: 'swatch', style: `background:${COLOURS[p.label]}`}), p.structure),
      el('td', {textContent: f(p.dice.mean)}), el('td', {textContent: f(p.dice.std)}), el('td', {textContent: f(p.precision.mean)}),
      el('td', {textContent: f(p.recall.mean)}), el('td', {textContent: f(p.assd_mm.mean, 2)}), el('td', {textContent: f(p.hd95_mm.mean, 2)}),
      el('td', {textContent: p.cases_with_structure}), el('td', {textContent: p.missed})));
    const y = 10 + i * (bh + 3), m = p.dice.mean || 0;
    svg.append(svgEl('text', {x: 0, y: y + bh - 3, 'font-size': 11}, p.structure));
    svg.append(svgEl('rect', {x: 60, y, height: bh, width: Math.max(0, m) * W, fill: COLOURS[p.label], stroke: '#555'}));
    if (p.dice.std) svg.append(svgEl('line', {x1: 60 + Math.max(0, m - p.dice.std) * W, x2: 60 + Math.min(1, m + p.dice.std) * W, y1: y + bh / 2, y2: y + bh / 2, stroke: '#000'}));
    svg.append(svgEl('text', {x: 66 + W, y: y + bh - 3, 'font-size': 11}, f(p.dice.mean)));
  });
  document.getElementById('chart').append(svg);
} else {
  document.getElementById('chart').textContent = 'No metrics: the graph has no metrics.evaluate node or no case had a mask.';
}
// The case table: sortable by any column, filtered by text and status; a row opens its detail.
const COLUMNS = [
  ['case', c => c.id, 'l'], ['status', c => c.status, 'l'],
  ['QC', c => c.qc ? QC_RANK[c.qc.verdict] + c.qc.score / 2 : undefined, 'qc'],
  ['Dice (all)', c => (c.metrics || {}).dice_all, 3], ['vertebrae', c => (c.metrics || {}).dice_vertebrae, 3],
  ['discs', c => (c.metrics || {}).dice_discs, 3], ['ASSD mm', c => (c.metrics || {}).assd_mm, 2],
  ['structures', c => (c.metrics || {}).structures_found, 0], ['volume ml', c => (c.metrics || {}).labelled_volume_ml, 1],
  ['warnings', c => (c.warnings || []).length, 0], ['outliers', c => MEASURES[c.id] ? MEASURES[c.id].outliers : undefined, 0],
  ['L1-S1 lordosis °', c => MEASURES[c.id] ? MEASURES[c.id].lordosis : undefined, 1],
  ['Genant grade', c => MEASURES[c.id] && MEASURES[c.id].grade_max >= 0 ? MEASURES[c.id].grade_max : undefined, 0]];
const head = document.querySelector('#cases thead tr'), tb = document.querySelector('#cases tbody');
let sortBy = 0, sortDir = 1;
COLUMNS.forEach(([name], i) => {
  const th = el('th', {textContent: name});
  th.addEventListener('click', () => { sortDir = sortBy === i ? -sortDir : 1; sortBy = i; render(); });
  head.append(th);
});
const rows = RUN.cases.map(c => {
  const tr = el('tr', {className: 'case ' + c.status, id: `row-${c.id}`});
  COLUMNS.forEach(([name, get, d], i) => {
    const v = get(c);
    const td = d === 'qc' ? (c.qc ? el('td', {className: 'l qc-' + c.qc.verdict, textContent: `${c.qc.verdict} ${f(c.qc.score, 2)}`, title: c.qc.reasons.join('; ')}) : el('td'))
      : el('td', {className: d === 'l' ? 'l' : '', textContent: d === 'l' ? (v || '') : f(v, d)});
    if (name === 'status' && c.error) td.append(el('div', {className: 'err', textContent: `[${c.error.node}] ${c.error.message}`}));
    if ((name === 'outliers' && v > 0) || (name === 'Genant grade' && v > 0)) td.className = 'flag';
    tr.append(td);
  });
  const detail = el('tr', {className: 'detail'}, el('td', {colSpan: COLUMNS.length}));
  detail.hidden = true;
  tr.addEventListener('click', () => toggle(c, detail));
  return {c, tr, detail};
});
function cmp(a, b) {
  const x = COLUMNS[sortBy][1](a.c), y = COLUMNS[sortBy][1](b.c);
  if (x === undefined || x === null) return 1; if (y === undefined || y === null) return -1;
  return (typeof x === 'string' ? x.localeCompare(y, undefined, {numeric: true}) : x - y) * sortDir;
}
function render() {
  const text = document.getElementById('filter').value.toLowerCase(), status = document.getElementById('status').value;
  [...head.children].forEach((th, i) => th.className = i === sortBy ? (sortDir > 0 ? 'asc' : 'desc') : '');
  tb.replaceChildren();
  let n = 0;
  for (const r of [...rows].sort(cmp)) {
    const hay = [r.c.id, r.c.status, ...(r.c.warnings || []), r.c.error ? r.c.error.message : '', r.c.qc ? r.c.qc.verdict + ' ' + r.c.qc.reasons.join(' ') : ''].join(' ').toLowerCase();
    if ((status && r.c.status !== status) || (text && !hay.includes(text))) continue;
    tb.append(r.tr, r.detail);
    ++n;
  }
  document.getElementById('shown').textContent = `${n} of ${rows.length} cases`;
}
document.getElementById('filter').addEventListener('input', render);
document.getElementById('status').addEventListener('change', render);
// A case's detail, built when first opened: the static pictures, its measurements, its viewer.
function toggle(c, detail) {
  detail.hidden = !detail.hidden;
  if (detail.hidden || detail.dataset.built) return;
  detail.dataset.built = '1';
  const td = detail.firstChild;
  const pics = el('div', {className: 'pics'});
  if (OVERLAYS[c.id]) pics.append(el('img', {src: OVERLAYS[c.id], alt: `${c.id} overlay`}));
  td.append(pics);
  if (c.qc) {
    const q = el('div', {className: 'qc', id: `qc-${c.id}`});
    q.append(el('b', {className: 'qc-' + c.qc.verdict, textContent: `QC ${c.qc.verdict}, score ${f(c.qc.score, 3)}`}), el('span', {textContent: c.qc.reasons.length ? ': ' + c.qc.reasons.join('; ') : ''}));
    const t = el('table');
    const names = Object.keys(c.qc.confidence);
    t.append(el('tr', {}, el('th', {textContent: 'confidence'}), ...names.map(n => el('th', {textContent: n}))));
    t.append(el('tr', {}, el('td'), ...names.map(n => el('td', {textContent: f(c.qc.confidence[n], 2), className: c.qc.confidence[n] < c.qc.reliable_from ? 'flag' : ''}))));
    q.append(t);
    td.append(q);
  }
  const m = MEASURES[c.id];
  if (m) {
    const box = el('div', {className: 'measures', id: `measures-${c.id}`});
    box.append(el('b', {textContent: `Measurements: L1-S1 lordosis ${m.lordosis === null ? 'n/a' : f(m.lordosis, 1) + '°'}` + (m.grade_max > 0 ? `, Genant grade ${m.grade_max}` : '') + (m.outliers ? `, ${m.outliers} outlier values` : '')}));
    if (m.picture) box.append(el('img', {src: m.picture, alt: `${c.id} measurements`}));
    const t = el('table');
    t.append(el('tr', {}, ...['structure', 'confidence', ...LEVEL_COLUMNS.map(c => c[1]), 'note'].map(h => el('th', {textContent: h}))));
    const left_out = m.levels.filter(r => !r.reliable).map(r => r.structure);
    if (left_out.length) box.append(el('div', {className: 'unsure', textContent: `Unreliable (grey; no grade; left out of the DICOM SR and the cohort's medians): ${left_out.join(', ')}`}));
    for (const r of m.levels) {
      const cells = [el('td', {className: 'l' + (r.reliable ? '' : ' unsure')}, el('span', {className: 'swatch', style: `background:${COLOURS[r.label]}`}), r.structure + (r.reliable ? '' : ' ?')),
                     el('td', {textContent: f(r.confidence, 2), className: r.reliable ? '' : 'unsure'})];
      for (const [k, , d, grade] of LEVEL_COLUMNS)  // a grade: shown when reliable, flagged above 0
        cells.push(grade ? el('td', {textContent: r[k] >= 0 && r.reliable ? r[k] : '', className: r[k] > 0 && r.reliable ? 'flag' : ''})
                         : el('td', {textContent: f(r[k], d), className: r.outliers.includes(k) ? 'flag' : ''}));
      cells.push(el('td', {className: 'l', textContent: [r.note, ...r.outliers.map(o => 'outlier: ' + o)].filter(x => x).join('; ')}));
      t.append(el('tr', {}, ...cells));
    }
    box.append(t);
    td.append(box);
  }
  if (VIEWERS[c.id]) {
    td.append(el('div', {}, el('a', {href: VIEWERS[c.id], target: '_blank', textContent: 'open the viewer on its own page'})));
    td.append(el('iframe', {className: 'viewer', src: VIEWERS[c.id], title: `${c.id} viewer`}));
  }
}
render();
// report.html#case=<id> (or #measures-<id>) opens that case.
let want = '';
try { want = decodeURIComponent(location.hash.replace(/^#(case=|measures-)/, '')); } catch (e) {}
const hit = rows.find(r => r.c.id === want);
if (hit) toggle(hit.c, hit.detail);
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
    for (const char* attr : {kOverlayAttr, kMeasureOverlayAttr}) {
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
    (attr == kOverlayAttr ? overlays : measure_pictures)[id] =
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
  json viewers = json::object();  // case -> its viewer page, relative to the report
  for (const auto& c : run["cases"])
    if (c.contains("attrs") && c["attrs"].contains(kViewerAttr) &&
        fs::exists(c["attrs"][kViewerAttr].get<std::string>()))
      viewers[c["id"].get<std::string>()] =
          fs::proximate(c["attrs"][kViewerAttr].get<std::string>(), dir).generic_string();
  const std::string page = fill_template(
      kPage, {{"@RUN@", script_json(run)},
              {"@SUMMARY@", script_json(summary)},
              {"@OVERLAYS@", script_json(overlays)},
              {"@COLOURS@", script_json(colours)},
              {"@MEASURES@", script_json(measures_of(run, measure_pictures))},
              {"@LEVEL_COLUMNS@", script_json(level_columns_json())},
              {"@VIEWERS@", script_json(viewers)}});
  const std::string out = (dir / "report.html").string();
  write_file_atomic(out, page);
  return out;
}

}  // namespace spineparse::metrics
