#include "metrics/viewer_page.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "io/orientation.hpp"
#include "metrics/html_util.hpp"
#include "metrics/measure.hpp"
#include "metrics/overlay.hpp"
#include "spine/labels.hpp"
#include "spineparse/cpu_clones.hpp"

namespace spineparse::metrics {

namespace {

// Array axes [D, H, W] are geometry columns 2, 0, 1 (the file axes H, W, D).
constexpr int kColumnOf[3] = {2, 0, 1};

// out[k] = 255 x (v[k] - lo) / span clamped to [0, 1], truncated (std::clamp's result, written as
// selects so that every build vectorises it).
SPINEPARSE_CPU_CLONES
void grey_row(const float* __restrict v, std::int64_t n, float lo, float span,
              std::uint32_t* __restrict out) {
  for (std::int64_t k = 0; k < n; ++k) {
    float x = (v[k] - lo) / span;
    x = x < 0.0f ? 0.0f : x;
    x = 1.0f < x ? 1.0f : x;
    out[k] = static_cast<std::uint32_t>(x * 255);
  }
}

// The image's grey levels: linear from its 0.5th to its 99.5th percentile (sampled), 0..255.
class GreyWindow {
 public:
  explicit GreyWindow(const NdArray& image) {
    const float* v = image.data<float>();
    const std::int64_t n = image.numel(), step = std::max<std::int64_t>(1, n / 200000);
    std::vector<float> s;
    for (std::int64_t i = 0; i < n; i += step) s.push_back(v[i]);
    const auto lo_at = s.begin() + static_cast<std::ptrdiff_t>(s.size() / 200),
               hi_at = s.begin() + static_cast<std::ptrdiff_t>(s.size() * 199 / 200);
    std::nth_element(s.begin(), hi_at, s.end());
    hi_ = *hi_at;
    std::nth_element(s.begin(), lo_at, hi_at);
    lo_ = *lo_at;
  }
  // One row of grey levels: out[k] for v[k], k < n.
  void row(const float* v, std::int64_t n, std::uint32_t* out) const {
    if (hi_ > lo_)
      grey_row(v, n, lo_, hi_ - lo_, out);
    else
      std::fill(out, out + n, 0u);
  }

 private:
  float lo_ = 0, hi_ = 0;
};

// Block means of the windowed image: out [m0, m1, m2] from image [n0, n1, n2] in blocks of f
// (the last block of an axis may be shorter), each mean rounded half up. Reads the image once,
// row by row: each row's grey levels added up per column over a block's rows, then per block of
// columns (integer sums: the order does not matter).
void block_means(const NdArray& image, const std::array<std::int64_t, 3>& f, NdArray& out) {
  const GreyWindow grey(image);
  const float* I = image.data<float>();
  const std::int64_t n0 = image.dim(0), n1 = image.dim(1), n2 = image.dim(2);
  const std::int64_t m1 = out.dim(1), m2 = out.dim(2);
  std::vector<std::uint32_t> col(static_cast<std::size_t>(n2)), g(static_cast<std::size_t>(n2));
  auto* o = out.data<std::uint8_t>();
  for (std::int64_t d = 0; d < out.dim(0); ++d)
    for (std::int64_t h = 0; h < m1; ++h) {
      std::fill(col.begin(), col.end(), 0u);
      const std::int64_t i1 = std::min(n0, (d + 1) * f[0]), j1 = std::min(n1, (h + 1) * f[1]);
      for (std::int64_t i = d * f[0]; i < i1; ++i)
        for (std::int64_t j = h * f[1]; j < j1; ++j) {
          grey.row(I + (i * n1 + j) * n2, n2, g.data());
          for (std::int64_t k = 0; k < n2; ++k) col[k] += g[k];
        }
      const std::int64_t rows = (i1 - d * f[0]) * (j1 - h * f[1]);
      for (std::int64_t w = 0; w < m2; ++w) {
        const std::int64_t k0 = w * f[2], k1 = std::min(n2, k0 + f[2]);
        std::uint64_t sum = 0;
        for (std::int64_t k = k0; k < k1; ++k) sum += col[k];
        o[(d * m1 + h) * m2 + w] =
            static_cast<std::uint8_t>(static_cast<double>(sum) / (rows * (k1 - k0)) + 0.5);
      }
    }
}

}  // namespace

namespace {

// Draws the vertebrae's measured endplates (1) and heights (2) (measurement_lines) into `lines`
// on grid `g`: each line sampled every half voxel, two voxels either side across the geometry
// column closest to the patient's left-right axis, so it shows on the sagittal planes around the
// structure's own.
void draw_measurements(NdArray& lines, const Geometry& g, const CaseMeasurement& m) {
  const io::PatientToIndex to_index(g);
  std::size_t lr = 0;  // the geometry column closest to left-right
  for (std::size_t c = 1; c < 3; ++c)
    if (std::abs(g.direction[c]) > std::abs(g.direction[lr])) lr = c;
  const std::int64_t n[3] = {lines.dim(1), lines.dim(2), lines.dim(0)};  // columns H, W, D
  auto* out = lines.data<std::uint8_t>();
  for (const MeasurementLine& l : measurement_lines(m)) {
    if (!is_vertebra(l.label)) continue;  // the discs' surfaces are the bodies' endplates
    const auto p = to_index(l.a), q = to_index(l.b);
    const double len = std::max({std::abs(q[0] - p[0]), std::abs(q[1] - p[1]), std::abs(q[2] - p[2])});
    const int steps = static_cast<int>(2 * len) + 1;
    for (int s = 0; s <= steps; ++s) {
      const double t = static_cast<double>(s) / steps;
      for (int off = -2; off <= 2; ++off) {
        std::int64_t idx[3];
        bool inside = true;
        for (std::size_t c = 0; c < 3; ++c) {
          idx[c] = std::llround(p[c] + t * (q[c] - p[c])) + (c == lr ? off : 0);
          inside &= idx[c] >= 0 && idx[c] < n[c];
        }
        if (inside) out[(idx[2] * n[0] + idx[0]) * n[1] + idx[1]] = l.height ? 2 : 1;
      }
    }
  }
}

}  // namespace

ViewerVolumes viewer_volumes(const NdArray& image, const NdArray& labels, const NdArray* mask,
                             const Geometry& g, int max_side, const CaseMeasurement* measurements) {
  if (image.shape() != labels.shape() || (mask && mask->shape() != labels.shape()))
    throw std::runtime_error("viewer: image, labels and mask differ in size");
  ViewerVolumes out;
  std::array<std::int64_t, 3> n{}, m{};
  for (int a = 0; a < 3; ++a) {
    n[a] = labels.dim(a);
    out.factor[a] = (n[a] + max_side - 1) / max_side;
    m[a] = (n[a] + out.factor[a] - 1) / out.factor[a];
  }
  const auto f = out.factor;
  auto img = NdArray::make<std::uint8_t>({m[0], m[1], m[2]}),
       lab = NdArray::make<std::uint8_t>({m[0], m[1], m[2]}),
       dif = mask ? NdArray::make<std::uint8_t>({m[0], m[1], m[2]}) : nullptr;
  block_means(image, f, *img);
  const auto* L = labels.data<std::uint8_t>();
  const std::uint8_t* M = mask ? mask->data<std::uint8_t>() : nullptr;
  auto centre = [&](int a, std::int64_t i) { return std::min(n[a] - 1, i * f[a] + f[a] / 2); };
  std::uint8_t* lab_out = lab->data<std::uint8_t>();
  std::uint8_t* dif_out = M ? dif->data<std::uint8_t>() : nullptr;
  for (std::int64_t d = 0, o = 0; d < m[0]; ++d)
    for (std::int64_t h = 0; h < m[1]; ++h)
      for (std::int64_t w = 0; w < m[2]; ++w, ++o) {
        const std::int64_t c = (centre(0, d) * n[1] + centre(1, h)) * n[2] + centre(2, w);
        lab_out[o] = L[c];
        if (M) dif_out[o] = M[c] && L[c] != M[c] ? 1 : (L[c] && !M[c] ? 2 : 0);
      }
  out.image = img;
  out.labels = lab;
  out.diff = dif;
  out.geometry = g;
  for (int a = 0; a < 3; ++a) {
    const int col = kColumnOf[a];
    const double shift = g.spacing[col] * static_cast<double>(f[a] / 2);  // the centre voxel
    for (int r = 0; r < 3; ++r) out.geometry.origin[r] += g.direction[r * 3 + col] * shift;
    out.geometry.spacing[col] = g.spacing[col] * static_cast<double>(f[a]);
  }
  if (measurements) {
    auto lines = NdArray::make<std::uint8_t>({m[0], m[1], m[2]});
    draw_measurements(*lines, out.geometry, *measurements);
    out.lines = lines;
  }
  return out;
}

namespace {

const char* kViewerPage = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>@TITLE@ - spineparse viewer</title>
<style>
body{margin:0;font-family:system-ui,sans-serif;font-size:13px;background:#111;color:#ddd}
#bar{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center;padding:6px 10px;background:#222}
#bar b{font-size:15px}button{background:#333;color:#ddd;border:1px solid #555;padding:2px 8px;cursor:pointer}
button.on{background:#4a6;color:#fff}#here{font-family:monospace;min-width:260px}
#legend{display:flex;flex-wrap:wrap;gap:2px 10px;padding:4px 10px;background:#1a1a1a}
#legend label{cursor:pointer}#legend label.unsure{color:#999}#legend small{color:#aaa;margin-left:3px}.sw{display:inline-block;width:10px;height:10px;margin:0 3px 0 2px}
#viewer{position:relative;width:100%;height:calc(100vh - 92px);min-height:320px}
#gl{width:100%;height:100%;display:block}#fallback{max-width:100%;display:none}
.note{color:#999}
</style></head><body>
<div id="bar"><b>@TITLE@</b><span class="note">@NOTE@</span>
<span><button data-plane="sagittal">sagittal</button><button data-plane="coronal">coronal</button><button data-plane="axial">axial</button><button data-plane="3d">3D</button></span>
<label>slice <input type="range" id="slice" min="0" max="1000" value="500"></label>
<label>labels <input type="range" id="opacity" min="0" max="100" value="60"></label>
<label id="lineslabel" hidden><input type="checkbox" id="lines" checked> measurements (endplates <span class="sw" style="background:#ffe100"></span>, heights <span class="sw" style="background:#fff"></span>)</label>
<label id="difflabel" hidden><input type="checkbox" id="diff"> difference (missed <span class="sw" style="background:#ff2020"></span>, spurious <span class="sw" style="background:#2080ff"></span>)</label>
<span id="here"></span></div>
<div id="legend"></div>
<div id="viewer"><canvas id="gl"></canvas><img id="fallback" alt="@TITLE@"></div>
<script src="@SCRIPT@"></script>
<script>
const CASE = @CASE@, NAMES = @NAMES@, COLOURS = @COLOURS@, FALLBACK = @FALLBACK@;
const CONFIDENCE = @CONFIDENCE@;  // by label: [confidence, reliable] or null
const MR = @MR@, LABELS = @LABELS@, DIFF = @DIFF@, LINES = @LINES@;
const PLANES = {sagittal: 2, coronal: 1, axial: 0, '3d': 4};  // NiiVue's slice types
const AXIS = {sagittal: 0, coronal: 1, axial: 2};               // RAS axis across the plane
const opts = Object.fromEntries(location.hash.slice(1).split('&').filter(x => x).map(x => x.split('=')));
const view = document.getElementById('viewer');
function fallback(why) {
  const img = document.getElementById('fallback');
  document.getElementById('gl').style.display = 'none';
  if (FALLBACK) { img.src = FALLBACK; img.style.display = 'block'; }
  view.setAttribute('data-viewer-fallback', why);
}
function lut(shown) {  // NiiVue label colour map: the palette, hidden structures transparent
  const R = [], G = [], B = [], A = [], I = [];
  COLOURS.forEach((c, i) => { R.push(c[0]); G.push(c[1]); B.push(c[2]); A.push(i && shown[i] ? 255 : 0); I.push(i); });
  return {R, G, B, A, I, labels: NAMES};
}
(async () => {
  if (!window.niivue) return fallback('the viewer script is missing');
  if (!document.createElement('canvas').getContext('webgl2')) return fallback('no WebGL2');
  const nv = new niivue.Niivue({backColor: [0, 0, 0, 1], show3Dcrosshair: false, isOrientCube: false,
                                sagittalNoseLeft: true, crosshairColor: [0.5, 0.5, 0.5, 1], crosshairWidth: 1});
  await nv.attachTo('gl');
  const mr = await niivue.NVImage.loadFromBase64({base64: MR, name: 'mr.nii.gz'});
  const lb = await niivue.NVImage.loadFromBase64({base64: LABELS, name: 'labels.nii.gz'});
  nv.addVolume(mr);
  nv.addVolume(lb);
  const shown = NAMES.map(() => true);
  lb.setColormapLabel(lut(shown));
  let df = null;
  if (DIFF) {
    df = await niivue.NVImage.loadFromBase64({base64: DIFF, name: 'difference.nii.gz'});
    nv.addVolume(df);
    df.setColormapLabel({R: [0, 255, 32], G: [0, 32, 128], B: [0, 32, 255], A: [0, 255, 255], I: [0, 1, 2], labels: ['', 'missed', 'spurious']});
    document.getElementById('difflabel').hidden = false;
  }
  let ln = null;
  if (LINES) {
    ln = await niivue.NVImage.loadFromBase64({base64: LINES, name: 'measurements.nii.gz'});
    nv.addVolume(ln);
    ln.setColormapLabel({R: [0, 255, 255], G: [0, 225, 255], B: [0, 0, 255], A: [0, 255, 255], I: [0, 1, 2], labels: ['', 'endplate', 'height']});
    document.getElementById('lineslabel').hidden = false;
  }
  let plane = opts.plane in PLANES ? opts.plane : 'sagittal';
  const opacity = document.getElementById('opacity'), slice = document.getElementById('slice'),
        diff = document.getElementById('diff');
  if (opts.opacity !== undefined) opacity.value = Math.round(100 * Number(opts.opacity));
  if (opts.slice !== undefined) slice.value = Math.round(1000 * Number(opts.slice));
  if (opts.labels === '0') opacity.value = 0;
  if (opts.diff === '1' && df) diff.checked = true;
  const lines = document.getElementById('lines');
  if (opts.lines === '0') lines.checked = false;
  function layers() {
    const o = opacity.value / 100;
    nv.setOpacity(1, diff.checked ? 0 : o);
    if (df) nv.setOpacity(nv.volumes.indexOf(df), diff.checked ? Math.max(o, 0.2) : 0);
    if (ln) nv.setOpacity(nv.volumes.indexOf(ln), lines.checked ? 1 : 0);
  }
  function setPlane(p) {
    plane = p;
    nv.setSliceType(PLANES[p]);
    for (const b of document.querySelectorAll('button[data-plane]')) b.classList.toggle('on', b.dataset.plane === p);
    slice.disabled = p === '3d';
    if (p !== '3d') slice.value = Math.round(1000 * nv.scene.crosshairPos[AXIS[p]]);
  }
  function setSlice() {
    if (plane === '3d') return;
    const pos = [...nv.scene.crosshairPos];
    pos[AXIS[plane]] = slice.value / 1000;
    nv.scene.crosshairPos = pos;
    nv.drawScene();
  }
  const legend = document.getElementById('legend');
  NAMES.forEach((name, i) => {
    if (!i) return;
    const box = Object.assign(document.createElement('input'), {type: 'checkbox', checked: true});
    box.addEventListener('change', () => { shown[i] = box.checked; lb.setColormapLabel(lut(shown)); nv.updateGLVolume(); });
    const sw = Object.assign(document.createElement('span'), {className: 'sw'});
    sw.style.background = `rgb(${COLOURS[i].join(',')})`;
    const l = document.createElement('label');
    const q = CONFIDENCE[i];
    l.append(box, sw, name + (q && q[1] <= 0 ? ' ?' : ''));
    if (q) { l.append(Object.assign(document.createElement('small'), {textContent: q[0].toFixed(2)})); l.title = `QC confidence ${q[0].toFixed(2)}${q[1] < 0 ? ': unreliable (the case failed QC)' : q[1] === 0 ? ': unreliable' : ''}`; }
    if (q && q[1] <= 0) l.className = 'unsure';
    legend.append(l);
  });
  nv.onLocationChange = (data) => {
    const v = data.values || [];
    const label = v[1] ? Math.round(v[1].value) : 0;
    const mm = data.mm ? data.mm.slice(0, 3).map(x => x.toFixed(1)).join(', ') : '';
    document.getElementById('here').textContent =
      `${label ? NAMES[label] + (CONFIDENCE[label] ? ` (confidence ${CONFIDENCE[label][0].toFixed(2)})` : '') : 'background'} | MR ${v[0] ? Math.round(v[0].value) : ''} | RAS ${mm} mm`;
  };
  for (const b of document.querySelectorAll('button[data-plane]')) b.addEventListener('click', () => setPlane(b.dataset.plane));
  opacity.addEventListener('input', layers);
  diff.addEventListener('change', layers);
  lines.addEventListener('change', layers);
  slice.addEventListener('input', setSlice);
  const start = slice.value;
  setPlane(plane);
  if (opts.slice !== undefined) { slice.value = start; }
  layers();
  setSlice();
  nv.updateGLVolume();
  requestAnimationFrame(() => requestAnimationFrame(() => view.setAttribute('data-viewer-ready', CASE)));
})().catch(e => { console.error(e); fallback(String(e)); });
</script></body></html>
)HTML";

}  // namespace

std::string viewer_page_html(const ViewerPage& page) {
  using nlohmann::json;
  json names = json::array(), colours = json::array(), confidence = json::array({nullptr});
  for (int l = 1; l < kNumClasses; ++l)
    confidence.push_back(std::isnan(page.confidence[l - 1])
                             ? json(nullptr)
                             : json::array({page.confidence[l - 1],
                                            std::isnan(page.reliable[l - 1]) ? 1.0
                                                                             : page.reliable[l - 1]}));
  for (int l = 0; l < kNumClasses; ++l) {
    names.push_back(l ? structure_name(l) : "");
    const auto c = label_colour(l);
    colours.push_back({c[0], c[1], c[2]});
  }
  auto b64 = [](const std::string& bytes) {
    return bytes.empty() ? std::string("null") : "\"" + base64(bytes) + "\"";
  };
  const std::map<std::string, std::string> values = {
      {"@TITLE@", html_escape(page.id)},
      {"@NOTE@", html_escape(page.note)},
      {"@SCRIPT@", html_escape(page.viewer_script)},
      {"@CASE@", script_json(page.id)},
      {"@NAMES@", script_json(names)},
      {"@COLOURS@", script_json(colours)},
      {"@CONFIDENCE@", script_json(confidence)},
      {"@FALLBACK@", page.fallback_png.empty() ? "null" : script_json(page.fallback_png)},
      {"@MR@", b64(page.mr_nii_gz)},
      {"@LABELS@", b64(page.labels_nii_gz)},
      {"@DIFF@", b64(page.diff_nii_gz)},
      {"@LINES@", b64(page.lines_nii_gz)}};
  return fill_template(kViewerPage, values);
}

}  // namespace spineparse::metrics
