#include "refine/refine.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include "spine/labels.hpp"

namespace spineparse::refine {

namespace {

struct Component {
  int label = 0;
  std::int64_t size = 0;
  double sum_w = 0;
  std::int64_t lo[3] = {INT64_MAX, INT64_MAX, INT64_MAX}, hi[3] = {-1, -1, -1};
  bool structure = false;
  int new_label = -1;  // -1: fragment
  double centroid_w() const { return sum_w / static_cast<double>(size); }
};

int chain_position(int label) {
  for (std::size_t i = 0; i < kSpineChain.size(); ++i) {
    if (kSpineChain[i] == label) return static_cast<int>(i);
  }
  return -1;
}
bool chain_is_disc(int pos) { return pos % 2 == 1; }

struct Dims {
  std::int64_t D, H, W, N;
};

// Step 1: connected components of equal labels, 26-neighbourhood; comp[i] is voxel i's (-1 for
// background).
std::vector<Component> label_components(const std::uint8_t* L, const Dims& g,
                                        std::vector<std::int32_t>& comp) {
  comp.assign(g.N, -1);
  std::vector<Component> comps;
  std::vector<std::int64_t> stack;
  for (std::int64_t i = 0; i < g.N; ++i) {
    if (!L[i] || comp[i] >= 0) continue;
    const int id = static_cast<int>(comps.size());
    Component c;
    c.label = L[i];
    comp[i] = id;
    stack.push_back(i);
    while (!stack.empty()) {
      const std::int64_t v = stack.back();
      stack.pop_back();
      ++c.size;
      const std::int64_t d = v / (g.H * g.W), h = (v / g.W) % g.H, w = v % g.W;
      c.sum_w += static_cast<double>(w);
      const std::int64_t p[3] = {d, h, w};
      for (int k = 0; k < 3; ++k)
        c.lo[k] = std::min(c.lo[k], p[k]), c.hi[k] = std::max(c.hi[k], p[k]);
      for (int a = -1; a <= 1; ++a)
        for (int b = -1; b <= 1; ++b)
          for (int e = -1; e <= 1; ++e) {
            const std::int64_t dd = d + a, hh = h + b, ww = w + e;
            if (dd < 0 || hh < 0 || ww < 0 || dd >= g.D || hh >= g.H || ww >= g.W) continue;
            const std::int64_t u = (dd * g.H + hh) * g.W + ww;
            if (comp[u] < 0 && L[u] == c.label) {
              comp[u] = id;
              stack.push_back(u);
            }
          }
    }
    comps.push_back(c);
  }
  return comps;
}

// Structures vs fragments: returns the structures' indices and the median of the labels'
// largest component sizes (the size of a typical structure).
std::vector<int> find_structures(std::vector<Component>& comps, const RefineOptions& opt,
                                 double* median) {
  std::map<int, std::int64_t> largest;
  for (const auto& c : comps) largest[c.label] = std::max(largest[c.label], c.size);
  std::vector<std::int64_t> mains;
  for (const auto& [l, s] : largest) mains.push_back(s);
  std::sort(mains.begin(), mains.end());
  *median = static_cast<double>(mains[mains.size() / 2]);
  std::vector<int> order;
  for (std::size_t i = 0; i < comps.size(); ++i) {
    auto& c = comps[i];
    const bool biggest = c.size == largest[c.label];
    // A label's largest component is its structure unless it is mere noise (a structure cut by
    // the field of view can be small); another component counts only when it is large (a
    // duplicated label), else it is a fragment.
    c.structure =
        chain_position(c.label) >= 0 && (biggest ? c.size >= 0.02 * *median
                                                 : c.size >= opt.min_fraction * largest[c.label] &&
                                                       c.size >= 0.5 * opt.min_fraction * *median);
    if (c.structure)
      order.push_back(static_cast<int>(i));
    else
      c.new_label = -1;
  }
  return order;
}

// Sorts the structures caudal to cranial along W: the caudal end is where low chain positions
// lie (the sign of the size-weighted covariance of W and chain position).
void sort_caudal_first(const std::vector<Component>& comps, std::vector<int>& order) {
  double sw = 0, sp = 0, n = 0;
  for (int i : order)
    sw += comps[i].centroid_w() * comps[i].size,
        sp += chain_position(comps[i].label) * double(comps[i].size), n += comps[i].size;
  double cov = 0;
  for (int i : order)
    cov += (comps[i].centroid_w() - sw / n) * (chain_position(comps[i].label) - sp / n) *
           comps[i].size;
  const bool caudal_high_w = cov < 0;
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    return caudal_high_w ? comps[a].centroid_w() > comps[b].centroid_w()
                         : comps[a].centroid_w() < comps[b].centroid_w();
  });
}

// Counts levels from the sacrum: the most caudal vertebra is S, then each structure takes the
// next chain position of its type (a level is skipped only where two structures of the same type
// follow each other, i.e. one is missing between them). Structures caudal to it are fragments.
void count_from_sacrum(std::vector<Component>& comps, const std::vector<int>& order) {
  const int n_p = static_cast<int>(kSpineChain.size());
  int j = -1;
  for (int i : order) {
    if (j < 0 && !is_vertebra(comps[i].label)) continue;
    int next = j < 0 ? 0 : j + 1;
    while (next < n_p && chain_is_disc(next) != is_disc(comps[i].label)) ++next;
    if (next >= n_p) break;
    comps[i].new_label = kSpineChain[next];
    j = next;
  }
}

// The assignment of chain positions (in order, of the right type) that agrees most with the
// labels, a skipped level costing `penalty` voxels: dynamic programming over (structure,
// position).
void best_chain(std::vector<Component>& comps, const std::vector<int>& order, double penalty) {
  const int n_c = static_cast<int>(order.size()), n_p = static_cast<int>(kSpineChain.size());
  const double kNeg = -std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(n_c, std::vector<double>(n_p, kNeg));
  std::vector<std::vector<std::pair<int, int>>> from(
      n_c, std::vector<std::pair<int, int>>(n_p, {-1, -1}));
  std::pair<int, int> at = {-1, -1};
  double top = kNeg;
  for (int i = 0; i < n_c; ++i) {
    const Component& c = comps[order[i]];
    for (int j = 0; j < n_p; ++j) {
      if (chain_is_disc(j) != is_disc(c.label)) continue;
      const double gain = (kSpineChain[j] == c.label ? 1.0 : 0.0) * c.size + 1e-3 * c.size;
      double b = gain;  // the first assigned structure (nothing caudal to it kept)
      std::pair<int, int> f = {-1, -1};
      for (int i2 = 0; i2 < i; ++i2)
        for (int j2 = 0; j2 < j; ++j2) {
          if (best[i2][j2] == kNeg) continue;
          const double v = best[i2][j2] + gain - penalty * (j - j2 - 1);
          if (v > b) b = v, f = {i2, j2};
        }
      best[i][j] = b;
      from[i][j] = f;
      if (b > top) top = b, at = {i, j};
    }
  }
  while (at.first >= 0) {
    comps[order[at.first]].new_label = kSpineChain[at.second];
    at = from[at.first][at.second];
  }
}

// Step 2: each structure's new label (> 0), or -1 for one that becomes a fragment.
void assign_levels(std::vector<Component>& comps, std::vector<int> order, const RefineOptions& opt,
                   double median) {
  if (!opt.reorder || order.empty()) {
    for (int i : order) comps[i].new_label = comps[i].label;
    return;
  }
  sort_caudal_first(comps, order);
  for (int i : order) comps[i].new_label = -1;  // unassigned structures become fragments
  bool any_vertebra = false;
  for (int i : order) any_vertebra |= is_vertebra(comps[i].label);
  if (opt.anchor_sacrum && any_vertebra)
    count_from_sacrum(comps, order);
  else
    best_chain(comps, order, median);  // a skipped level costs about one structure's agreement
}

// Step 3: fragments join the structure they touch most (6-neighbourhood); one touching nothing
// keeps its label when it lies next to (within 2 voxels of the box of) a structure that keeps
// that label (a piece of it, split off by partial volume); else background.
void absorb_fragments(std::uint8_t* L, const Dims& g, const std::vector<std::int32_t>& comp,
                      const std::vector<Component>& comps) {
  std::vector<std::map<int, std::int64_t>> touch(comps.size());
  const std::int64_t step[3] = {g.H * g.W, g.W, 1}, n[3] = {g.D, g.H, g.W};
  for (std::int64_t i = 0; i < g.N; ++i) {
    if (comp[i] < 0 || comps[comp[i]].new_label > 0) continue;
    const std::int64_t p[3] = {i / (g.H * g.W), (i / g.W) % g.H, i % g.W};
    for (int ax = 0; ax < 3; ++ax)
      for (int s : {-1, 1}) {
        const std::int64_t q = p[ax] + s;
        if (q < 0 || q >= n[ax]) continue;
        const std::int64_t u = i + s * step[ax];
        if (L[u] && comp[u] >= 0 && comps[comp[u]].new_label > 0) ++touch[comp[i]][L[u]];
      }
  }
  auto near_own_structure = [&](const Component& f) {
    for (const auto& c : comps) {
      if (c.new_label != f.label) continue;
      bool overlap = true;
      for (int k = 0; k < 3; ++k) overlap &= f.lo[k] <= c.hi[k] + 2 && c.lo[k] <= f.hi[k] + 2;
      if (overlap) return true;
    }
    return false;
  };
  std::vector<int> fragment_label(comps.size(), 0);
  for (std::size_t c = 0; c < comps.size(); ++c) {
    if (comps[c].new_label > 0) continue;
    std::int64_t bestn = 0;
    for (const auto& [l, k] : touch[c])
      if (k > bestn) bestn = k, fragment_label[c] = l;
    if (bestn == 0 && near_own_structure(comps[c])) fragment_label[c] = comps[c].label;
  }
  for (std::int64_t i = 0; i < g.N; ++i)
    if (comp[i] >= 0 && comps[comp[i]].new_label <= 0)
      L[i] = static_cast<std::uint8_t>(fragment_label[comp[i]]);
}

// Background of slice S [H, W] enclosed by label l: flooded from the border of l's box, what
// stays unreached is enclosed and takes l. Returns the voxels filled.
std::int64_t fill_enclosed(std::uint8_t* S, std::int64_t H, std::int64_t W, int l,
                           std::vector<std::uint8_t>& seen, std::vector<std::int64_t>& q) {
  std::int64_t h0 = H, h1 = -1, w0 = W, w1 = -1;
  for (std::int64_t h = 0; h < H; ++h)
    for (std::int64_t w = 0; w < W; ++w)
      if (S[h * W + w] == l)
        h0 = std::min(h0, h), h1 = std::max(h1, h), w0 = std::min(w0, w), w1 = std::max(w1, w);
  if (h1 < 0 || h1 - h0 < 2 || w1 - w0 < 2) return 0;
  for (std::int64_t h = h0; h <= h1; ++h) std::memset(&seen[h * W + w0], 0, w1 - w0 + 1);
  q.clear();
  for (std::int64_t h = h0; h <= h1; ++h)
    for (std::int64_t w = w0; w <= w1; ++w)
      if ((h == h0 || h == h1 || w == w0 || w == w1) && S[h * W + w] != l)
        seen[h * W + w] = 1, q.push_back(h * W + w);
  while (!q.empty()) {
    const std::int64_t v = q.back();
    q.pop_back();
    const std::int64_t h = v / W, w = v % W;
    const std::int64_t nb[4][2] = {{h - 1, w}, {h + 1, w}, {h, w - 1}, {h, w + 1}};
    for (const auto& x : nb) {
      if (x[0] < h0 || x[0] > h1 || x[1] < w0 || x[1] > w1) continue;
      const std::int64_t u = x[0] * W + x[1];
      if (!seen[u] && S[u] != l) seen[u] = 1, q.push_back(u);
    }
  }
  std::int64_t filled = 0;
  for (std::int64_t h = h0 + 1; h < h1; ++h)
    for (std::int64_t w = w0 + 1; w < w1; ++w)
      if (!seen[h * W + w] && S[h * W + w] == 0)
        S[h * W + w] = static_cast<std::uint8_t>(l), ++filled;
  return filled;
}

}  // namespace

RefineReport refine_labels(NdArray& arr, const RefineOptions& opt) {
  RefineReport rep;
  const Dims g{arr.dim(0), arr.dim(1), arr.dim(2), arr.numel()};
  std::uint8_t* L = arr.data<std::uint8_t>();
  const std::vector<std::uint8_t> original(L, L + g.N);
  std::vector<std::int32_t> comp;
  std::vector<Component> comps = label_components(L, g, comp);
  rep.components = static_cast<int>(comps.size());
  if (comps.empty()) return rep;
  double median = 0;
  const std::vector<int> order = find_structures(comps, opt, &median);
  assign_levels(comps, order, opt, median);
  for (auto& c : comps) {
    if (c.new_label > 0) {
      ++rep.structures;
      rep.relabelled += c.new_label != c.label;
    } else {
      ++rep.fragments;
      rep.fragment_voxels += c.size;
    }
  }
  for (std::int64_t i = 0; i < g.N; ++i)
    if (comp[i] >= 0)
      L[i] = comps[comp[i]].new_label > 0 ? static_cast<std::uint8_t>(comps[comp[i]].new_label) : 0;
  absorb_fragments(L, g, comp, comps);
  if (opt.fill_holes) {  // step 4: holes, background enclosed by one label within a slice
    std::vector<std::uint8_t> seen(g.H * g.W);
    std::vector<std::int64_t> q;
    for (std::int64_t d = 0; d < g.D; ++d)
      for (int l = 1; l <= kMaxLabel; ++l)
        rep.filled_voxels += fill_enclosed(L + d * g.H * g.W, g.H, g.W, l, seen, q);
  }
  for (std::int64_t i = 0; i < g.N; ++i) rep.changed_voxels += L[i] != original[i];
  return rep;
}

}  // namespace spineparse::refine
