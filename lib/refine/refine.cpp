#include "refine/refine.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>

#include "refine/levels.hpp"
#include "spine/labels.hpp"

namespace spineparse::refine {

namespace {

// A neighbour's position relative to a voxel, and its offset in memory.
struct Step {
  std::int64_t d, h, w, offset;
};

struct Dims {
  std::int64_t D, H, W, N;
  std::vector<std::int64_t> rows;   // the rows (d * H + h) that held a label at the start: every
                                    // component's voxels lie in them
  std::vector<Step> around, after;  // the 26 neighbours; the 13 after a voxel in memory order
  Dims(std::int64_t d, std::int64_t h, std::int64_t w) : D(d), H(h), W(w), N(d * h * w) {
    for (std::int64_t a = -1; a <= 1; ++a)
      for (std::int64_t b = -1; b <= 1; ++b)
        for (std::int64_t e = -1; e <= 1; ++e) {
          const Step s{a, b, e, (a * H + b) * W + e};
          if (s.offset != 0) around.push_back(s);
          if (s.offset > 0) after.push_back(s);
        }
  }
};

// The rows of L [D, H, W] holding a label.
std::vector<std::int64_t> labelled_rows(const std::uint8_t* L, const Dims& g) {
  std::vector<std::int64_t> rows;
  for (std::int64_t r = 0; r < g.D * g.H; ++r) {
    std::uint8_t any = 0;
    for (std::int64_t w = 0; w < g.W; ++w) any |= L[r * g.W + w];
    if (any) rows.push_back(r);
  }
  return rows;
}

// f(i, d, h, w) for every voxel i = (d, h, w) of the labelled rows, in memory order.
template <typename F>
void for_each_in_rows(const Dims& g, F&& f) {
  for (const std::int64_t r : g.rows) {
    const std::int64_t d = r / g.H, h = r % g.H;
    for (std::int64_t w = 0, i = r * g.W; w < g.W; ++w, ++i) f(i, d, h, w);
  }
}

// Step 1: connected components of equal labels, 26-neighbourhood; comp[i] is voxel i's (-1 for
// background).
std::vector<Component> label_components(const std::uint8_t* L, const Dims& g,
                                        std::vector<std::int32_t>& comp) {
  comp.assign(g.N, -1);
  std::vector<Component> comps;
  struct At {
    std::int64_t d, h, w;
  };
  std::vector<At> stack;
  for_each_in_rows(g, [&](std::int64_t i, std::int64_t d0, std::int64_t h0, std::int64_t w0) {
    if (!L[i] || comp[i] >= 0) return;
    const int id = static_cast<int>(comps.size());
    Component c;
    c.label = L[i];
    comp[i] = id;
    stack.push_back({d0, h0, w0});
    while (!stack.empty()) {
      const auto [d, h, w] = stack.back();
      stack.pop_back();
      ++c.size;
      c.m.add(static_cast<double>(h), static_cast<double>(w));
      const std::int64_t p[3] = {d, h, w};
      for (int k = 0; k < 3; ++k)
        c.lo[k] = std::min(c.lo[k], p[k]), c.hi[k] = std::max(c.hi[k], p[k]);
      const bool inside = d > 0 && d + 1 < g.D && h > 0 && h + 1 < g.H && w > 0 && w + 1 < g.W;
      const std::int64_t v = (d * g.H + h) * g.W + w;
      for (const Step& s : g.around) {
        const std::int64_t dd = d + s.d, hh = h + s.h, ww = w + s.w;
        if (!inside && (dd < 0 || hh < 0 || ww < 0 || dd >= g.D || hh >= g.H || ww >= g.W))
          continue;
        const std::int64_t u = v + s.offset;
        if (L[u] == c.label && comp[u] < 0) {
          comp[u] = id;
          stack.push_back({dd, hh, ww});
        }
      }
    }
    c.at_edge = c.lo[1] == 0 || c.lo[2] == 0 || c.hi[1] == g.H - 1 || c.hi[2] == g.W - 1;
    comps.push_back(c);
  });
  return comps;
}

// Component `id`'s voxels by their position along direction (uh, uw) in mm, ascending.
std::vector<std::pair<double, std::int64_t>> along(int id, std::pair<double, double> u,
                                                   const Dims& g, const RefineOptions& opt,
                                                   const std::vector<std::int32_t>& comp) {
  std::vector<std::pair<double, std::int64_t>> out;
  for_each_in_rows(g, [&](std::int64_t i, std::int64_t, std::int64_t h, std::int64_t w) {
    if (comp[i] == id)
      out.emplace_back(h * opt.spacing_h * u.first + w * opt.spacing_w * u.second, i);
  });
  std::sort(out.begin(), out.end());
  return out;
}

// Cuts component `id` (its voxels `by` position, ascending) at positions `cuts` (ascending): the
// pieces after the first become new components of the same label.
void cut_component(int id, const std::vector<std::pair<double, std::int64_t>>& by,
                   const std::vector<double>& cuts, const Dims& g, std::vector<std::int32_t>& comp,
                   std::vector<Component>& comps) {
  const int label = comps[id].label;
  std::vector<int> ids = {id};
  for (std::size_t p = 0; p < cuts.size(); ++p)
    ids.push_back(static_cast<int>(comps.size())), comps.emplace_back();
  for (int p : ids) comps[p] = Component(), comps[p].label = label;
  std::size_t piece = 0;
  for (const auto& [x, i] : by) {
    while (piece < cuts.size() && x >= cuts[piece]) ++piece;
    const std::int64_t q[3] = {i / (g.H * g.W), (i / g.W) % g.H, i % g.W};
    Component& c = comps[ids[piece]];
    comp[i] = ids[piece];
    ++c.size;
    c.m.add(static_cast<double>(q[1]), static_cast<double>(q[2]));
    for (int a = 0; a < 3; ++a)
      c.lo[a] = std::min(c.lo[a], q[a]), c.hi[a] = std::max(c.hi[a], q[a]);
  }
  for (int p : ids) {
    Component& c = comps[p];
    c.at_edge = c.lo[1] == 0 || c.lo[2] == 0 || c.hi[1] == g.H - 1 || c.hi[2] == g.W - 1;
  }
}

// k pieces of equal voxel counts.
void cut_equally(int id, int k, std::pair<double, double> u, const Dims& g,
                 const RefineOptions& opt, std::vector<std::int32_t>& comp,
                 std::vector<Component>& comps) {
  const auto by = along(id, u, g, opt, comp);
  std::vector<double> cuts;
  for (int p = 1; p < k; ++p) cuts.push_back(by[by.size() * p / k].first);
  cut_component(id, by, cuts, g, comp, comps);
}

// A sacrum longer than kSacrumBodies typical bodies along the spine has the levels above it
// under its label (the L5/S disc missed, L5 called S): the part beyond a sacrum's length toward
// `cranial` is cut off as a body of its own.
constexpr double kSacrumBodies = 2.6, kSacrumLength = 1.8;
void cut_long_sacrum(int id, double length, double typical, std::pair<double, double> cranial,
                     const Dims& g, const RefineOptions& opt, std::vector<std::int32_t>& comp,
                     std::vector<Component>& comps) {
  if (length < kSacrumBodies * typical || (cranial.first == 0 && cranial.second == 0)) return;
  const auto by = along(id, cranial, g, opt, comp);
  const double lo = by.front().first, hi = by.back().first;
  if (!(hi > lo)) return;
  const double beyond = (length - kSacrumLength * typical) / length;
  cut_component(id, by, {hi - beyond * (hi - lo)}, g, comp, comps);
}

// The unit direction from component i toward the nearest disc (i's cranial side, for the sacrum).
std::pair<double, double> cranial_of(const std::vector<Component>& comps,
                                     const std::vector<Shape>& shapes, std::size_t i) {
  int best = -1;
  double best_d = 0;
  for (std::size_t j = 0; j < comps.size(); ++j) {
    if (!is_disc(comps[j].label)) continue;
    const double d = std::hypot(shapes[j].h - shapes[i].h, shapes[j].w - shapes[i].w) /
                     std::sqrt(static_cast<double>(comps[j].size));
    if (best < 0 || d < best_d) best = static_cast<int>(j), best_d = d;
  }
  if (best < 0) return {0, 0};
  const double dh = shapes[best].h - shapes[i].h, dw = shapes[best].w - shapes[i].w;
  const double n = std::hypot(dh, dw);
  return n > 0 ? std::pair{dh / n, dw / n} : std::pair{0.0, 0.0};
}

// The most caudal vertebra component of at least min_size (the sacrum, whatever its label): the
// caudal end is where the labels' chain positions are low. -1 if none.
int most_caudal_body(const std::vector<Component>& comps, const std::vector<Shape>& shapes,
                     double min_size) {
  double sw = 0, sp = 0, n = 0, cov = 0;
  for (std::size_t i = 0; i < comps.size(); ++i) {
    const auto s = static_cast<double>(comps[i].size);
    sw += shapes[i].w * s, sp += chain_position(comps[i].label) * s, n += s;
  }
  for (std::size_t i = 0; i < comps.size(); ++i)
    cov += (shapes[i].w - sw / n) * (chain_position(comps[i].label) - sp / n) *
           static_cast<double>(comps[i].size);
  int best = -1;
  for (std::size_t i = 0; i < comps.size(); ++i) {
    if (!is_vertebra(comps[i].label) || static_cast<double>(comps[i].size) < min_size) continue;
    if (best < 0 || (cov < 0 ? shapes[i].w > shapes[best].w : shapes[i].w < shapes[best].w))
      best = static_cast<int>(i);
  }
  return best;
}

// Step 1b: a vertebra component as long along the spine as 1.7 or more typical bodies (a disc
// missed, so two levels share a label and a component) is cut into that many pieces along the
// spine. The sacrum (label 1, and the most caudal body whatever its label) is long by nature and
// never cut.
void split_merged_bodies(const Dims& g, const RefineOptions& opt, std::vector<std::int32_t>& comp,
                         std::vector<Component>& comps) {
  std::array<int, kNumClasses> largest;
  largest.fill(-1);
  for (std::size_t i = 0; i < comps.size(); ++i) {
    int& l = largest[comps[i].label];
    if (l < 0 || comps[i].size > comps[l].size) l = static_cast<int>(i);
  }
  std::vector<double> sizes;
  for (int l : largest)
    if (l >= 0) sizes.push_back(static_cast<double>(comps[l].size));
  if (sizes.empty()) return;
  std::nth_element(sizes.begin(), sizes.begin() + sizes.size() / 2, sizes.end());
  std::vector<Shape> shapes;
  for (const auto& c : comps) shapes.emplace_back(c.m, opt.spacing_h, opt.spacing_w);
  const auto dir = spine_directions(comps, shapes);
  const int sacrum = most_caudal_body(comps, shapes, 0.2 * sizes[sizes.size() / 2]);
  auto length = [&](std::size_t i) { return shapes[i].extent(dir[i].first, dir[i].second); };
  std::vector<double> body;  // the bodies' typical length along the spine
  for (int label = 2; label <= 10; ++label)
    if (largest[label] >= 0) body.push_back(length(largest[label]));
  if (body.size() < 3) return;
  std::nth_element(body.begin(), body.begin() + body.size() / 2, body.end());
  const double typical = body[body.size() / 2];
  if (typical <= 0) return;
  const std::size_t n = comps.size();
  for (std::size_t i = 0; i < n; ++i) {
    if (static_cast<int>(i) == sacrum && (dir[i].first != 0 || dir[i].second != 0)) {
      cut_long_sacrum(static_cast<int>(i), length(i), typical, cranial_of(comps, shapes, i), g, opt,
                      comp, comps);
      continue;
    }
    if (comps[i].label < 2 || comps[i].label > 10 || static_cast<int>(i) == sacrum) continue;
    // Two bodies and the disc between them are about 2.4 bodies long; one body with part of a
    // disc labelled as it, up to about 1.5.
    const auto k = static_cast<long>(std::floor(length(i) / typical + 0.3));
    if (k >= 2 && k <= 4)
      cut_equally(static_cast<int>(i), static_cast<int>(k), dir[i], g, opt, comp, comps);
  }
}

// Pairs of components of different labels of one type (vertebra or disc) that touch
// (26-neighbourhood): the candidates for one structure labelled two ways.
Touching touching_pairs(const std::uint8_t* L, const Dims& g,
                        const std::vector<std::int32_t>& comp) {
  std::set<std::pair<int, int>> pairs;
  for_each_in_rows(g, [&](std::int64_t i, std::int64_t d, std::int64_t h, std::int64_t w) {
    if (comp[i] < 0) return;
    const bool inside = d + 1 < g.D && h > 0 && h + 1 < g.H && w > 0 && w + 1 < g.W;
    for (const Step& s : g.after) {  // the 13 neighbours after i in memory order
      if (!inside &&
          (d + s.d >= g.D || h + s.h < 0 || h + s.h >= g.H || w + s.w < 0 || w + s.w >= g.W))
        continue;
      const std::int64_t u = i + s.offset;
      if (comp[u] < 0 || L[u] == L[i] || is_disc(L[u]) != is_disc(L[i])) continue;
      pairs.insert(std::minmax(comp[i], comp[u]));
    }
  });
  return {pairs.begin(), pairs.end()};
}

// Step 3: fragments join the structure they touch most (6-neighbourhood); one touching nothing
// keeps its label when it lies next to (within 2 voxels of the box of) a structure that keeps
// that label (a piece of it, split off by partial volume); else background.
void absorb_fragments(std::uint8_t* L, const Dims& g, const std::vector<std::int32_t>& comp,
                      const std::vector<Component>& comps) {
  std::vector<std::map<int, std::int64_t>> touch(comps.size());
  const std::int64_t step[3] = {g.H * g.W, g.W, 1}, n[3] = {g.D, g.H, g.W};
  for_each_in_rows(g, [&](std::int64_t i, std::int64_t d, std::int64_t h, std::int64_t w) {
    if (comp[i] < 0 || comps[comp[i]].new_label > 0) return;
    const std::int64_t p[3] = {d, h, w};
    for (int ax = 0; ax < 3; ++ax)
      for (int s : {-1, 1}) {
        const std::int64_t q = p[ax] + s;
        if (q < 0 || q >= n[ax]) continue;
        const std::int64_t u = i + s * step[ax];
        if (L[u] && comp[u] >= 0 && comps[comp[u]].new_label > 0) ++touch[comp[i]][L[u]];
      }
  });
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
  for_each_in_rows(g, [&](std::int64_t i, std::int64_t, std::int64_t, std::int64_t) {
    if (comp[i] >= 0 && comps[comp[i]].new_label <= 0)
      L[i] = static_cast<std::uint8_t>(fragment_label[comp[i]]);
  });
}

struct Box {
  std::int64_t h0, h1, w0, w1;
};

// Every label's box in slice S [H, W], in one pass (h1 < 0: absent); a row without labels, most
// of a slice, is passed over after one vectorised look.
std::array<Box, kNumClasses> label_boxes(const std::uint8_t* S, std::int64_t H, std::int64_t W) {
  std::array<Box, kNumClasses> b;
  b.fill({H, -1, W, -1});
  for (std::int64_t h = 0; h < H; ++h) {
    if (!any_structure(S + h * W, W)) continue;
    for (std::int64_t w = 0; w < W; ++w) {
      const int l = S[h * W + w];
      if (!l || l >= kNumClasses) continue;
      Box& x = b[l];
      x.h0 = std::min(x.h0, h), x.h1 = std::max(x.h1, h), x.w0 = std::min(x.w0, w),
      x.w1 = std::max(x.w1, w);
    }
  }
  return b;
}

// Background of slice S [H, W] enclosed by label l: flooded from the border of l's box, what
// stays unreached is enclosed and takes l. Returns the voxels filled. (Filling one label's holes
// leaves the other labels' boxes as they were.)
std::int64_t fill_enclosed(std::uint8_t* S, std::int64_t W, int l, const Box& box,
                           std::vector<std::uint8_t>& seen, std::vector<std::int64_t>& q) {
  const auto [h0, h1, w0, w1] = box;
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
  Dims g(arr.dim(0), arr.dim(1), arr.dim(2));
  std::uint8_t* L = arr.data<std::uint8_t>();
  g.rows = labelled_rows(L, g);
  const std::vector<std::uint8_t> original(L, L + g.N);
  std::vector<std::int32_t> comp;
  std::vector<Component> comps = label_components(L, g, comp);
  rep.components = static_cast<int>(comps.size());
  if (comps.empty()) return rep;
  split_merged_bodies(g, opt, comp, comps);
  const LevelResult levels = assign_levels(comps, touching_pairs(L, g, comp), opt);
  rep.structures = levels.structures;
  rep.relabelled = levels.relabelled;
  for (const auto& c : comps)
    if (c.new_label <= 0) ++rep.fragments, rep.fragment_voxels += c.size;
  for_each_in_rows(g, [&](std::int64_t i, std::int64_t, std::int64_t, std::int64_t) {
    if (comp[i] >= 0)
      L[i] = comps[comp[i]].new_label > 0 ? static_cast<std::uint8_t>(comps[comp[i]].new_label) : 0;
  });
  absorb_fragments(L, g, comp, comps);
  if (opt.fill_holes) {  // step 4: holes, background enclosed by one label within a slice
    std::vector<std::uint8_t> seen(g.H * g.W);
    std::vector<std::int64_t> q;
    for (std::int64_t d = 0; d < g.D; ++d) {
      std::uint8_t* S = L + d * g.H * g.W;
      const auto boxes = label_boxes(S, g.H, g.W);
      for (int l = 1; l <= kMaxLabel; ++l)
        rep.filled_voxels += fill_enclosed(S, g.W, l, boxes[l], seen, q);
    }
  }
  for (std::int64_t i = 0; i < g.N; ++i) rep.changed_voxels += L[i] != original[i];
  return rep;
}

}  // namespace spineparse::refine
