#include "refine/levels.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <tuple>

namespace spineparse::refine {

namespace {

bool chain_is_disc(int pos) { return pos % 2 == 1; }

double median_of(std::vector<double> v, double fallback) {
  if (v.empty()) return fallback;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

// A physical structure: touching components of one type at one height, voting for its label.
struct Object {
  std::vector<int> parts;
  std::int64_t size = 0;
  bool at_edge = false;
  std::array<std::int64_t, kNumClasses> votes{};
  Moments m;
  int label = 0;  // the label most of its voxels carry
  int new_label = -1;
  double along(bool caudal_high_w) const { return (caudal_high_w ? -1 : 1) * m.w / m.n; }
};

// Union-find over components.
int root(std::vector<int>& parent, int a) {
  while (parent[a] != a) a = parent[a] = parent[parent[a]];
  return a;
}

// The typical thickness of each type: the median over labels of their largest component's.
std::array<double, 2> typical_thickness(const std::vector<Component>& comps, double sp_h,
                                        double sp_w) {
  std::array<int, kNumClasses> largest;
  largest.fill(-1);
  for (std::size_t i = 0; i < comps.size(); ++i) {
    int& l = largest[comps[i].label];
    if (l < 0 || comps[i].size > comps[l].size) l = static_cast<int>(i);
  }
  std::vector<double> t[2];
  for (int label = 1; label <= kMaxLabel; ++label)
    if (largest[label] >= 0)
      t[is_disc(label)].push_back(Shape(comps[largest[label]].m, sp_h, sp_w).thickness());
  const double v = median_of(t[0], 0);
  return {v, median_of(t[1], 0.3 * v)};
}

// Groups touching components of one type whose centres lie less than 0.6 of a typical structure
// apart along the spine (halves of one body labelled two ways), not those a level apart.
std::vector<Object> group_objects(const std::vector<Component>& comps, const Touching& touching,
                                  const RefineOptions& opt) {
  std::vector<int> parent(comps.size());
  std::iota(parent.begin(), parent.end(), 0);
  const auto typical = typical_thickness(comps, opt.spacing_h, opt.spacing_w);
  std::vector<Shape> shapes;
  for (const auto& c : comps) shapes.emplace_back(c.m, opt.spacing_h, opt.spacing_w);
  const auto dir = spine_directions(comps, shapes);
  for (const auto& [a, b] : touching) {
    const Shape &sa = shapes[a], &sb = shapes[b];
    // Along the spine there: from the larger piece's neighbours (its thin axis without any).
    auto [uh, uw] = dir[comps[a].size >= comps[b].size ? a : b];
    if (uh == 0 && uw == 0)
      std::tie(uh, uw) = (comps[a].size >= comps[b].size ? sa : sb).thin_axis();
    const double apart = std::abs((sb.h - sa.h) * uh + (sb.w - sa.w) * uw);
    if (apart < 0.6 * typical[is_disc(comps[a].label)]) parent[root(parent, a)] = root(parent, b);
  }
  std::vector<int> index(comps.size(), -1);
  std::vector<Object> objects;
  for (std::size_t i = 0; i < comps.size(); ++i) {
    const int r = root(parent, static_cast<int>(i));
    if (index[r] < 0) index[r] = static_cast<int>(objects.size()), objects.emplace_back();
    Object& o = objects[index[r]];
    o.parts.push_back(static_cast<int>(i));
    o.size += comps[i].size;
    o.votes[comps[i].label] += comps[i].size;
    o.m.add(comps[i].m);
    o.at_edge |= comps[i].at_edge;
  }
  for (auto& o : objects)
    o.label = static_cast<int>(std::max_element(o.votes.begin(), o.votes.end()) - o.votes.begin());
  return objects;
}

// Structures vs fragments: the objects that count as structures, and the size of a typical
// structure (the median of the labels' largest objects). A label's largest object is its structure
// unless it is small for its type (a quarter of the type's typical size; a structure cut by the
// field of view may be smaller); another object counts only when it is large (a duplicated
// label). The rest are fragments.
std::vector<int> find_structures(std::vector<Object>& objects, const RefineOptions& opt,
                                 double* median) {
  std::array<std::int64_t, kNumClasses> largest{};
  for (const auto& o : objects) largest[o.label] = std::max(largest[o.label], o.size);
  std::vector<double> mains, of_type[2];
  for (int l = 1; l <= kMaxLabel; ++l)
    if (largest[l] > 0)
      mains.push_back(static_cast<double>(largest[l])),
          of_type[is_disc(l)].push_back(static_cast<double>(largest[l]));
  *median = median_of(mains, 0);
  std::vector<int> order;
  for (std::size_t i = 0; i < objects.size(); ++i) {
    const Object& o = objects[i];
    if (chain_position(o.label) < 0) continue;
    const auto size = static_cast<double>(o.size);
    const double typical = median_of(of_type[is_disc(o.label)], *median);
    const bool structure = o.size == largest[o.label]
                               ? size >= (o.at_edge          ? 0.02
                                          : is_disc(o.label) ? 0.1
                                                             : 0.25) *
                                             typical
                               : size >= opt.min_fraction * static_cast<double>(largest[o.label]) &&
                                     size >= 0.5 * opt.min_fraction * typical;
    if (structure) order.push_back(static_cast<int>(i));
  }
  return order;
}

// Sorts the structures caudal to cranial along W: the caudal end is where low chain positions
// lie (the sign of the size-weighted covariance of W and chain position).
void sort_caudal_first(const std::vector<Object>& objects, std::vector<int>& order) {
  double sw = 0, sp = 0, n = 0, cov = 0;
  for (int i : order) {
    const auto s = static_cast<double>(objects[i].size);
    sw += objects[i].along(false) * s, sp += chain_position(objects[i].label) * s, n += s;
  }
  for (int i : order)
    cov += (objects[i].along(false) - sw / n) * (chain_position(objects[i].label) - sp / n) *
           static_cast<double>(objects[i].size);
  const bool caudal_high_w = cov < 0;
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    return objects[a].along(caudal_high_w) < objects[b].along(caudal_high_w);
  });
}

// The sacrum: the most caudal structure the networks call S or, when none is, the most caudal
// vertebra if it is the size of a sacrum (at least 1.3 times the median vertebra); -1 if neither.
int find_sacrum(const std::vector<Object>& objects, const std::vector<int>& order) {
  for (std::size_t k = 0; k < order.size(); ++k)
    if (objects[order[k]].label == kSpineChain[0]) return static_cast<int>(k);
  std::vector<double> bodies;
  int first = -1;
  for (std::size_t k = 0; k < order.size(); ++k) {
    if (!is_vertebra(objects[order[k]].label)) continue;
    if (first < 0) first = static_cast<int>(k);
    bodies.push_back(static_cast<double>(objects[order[k]].size));
  }
  if (first < 0 || bodies.size() < 3) return -1;
  return static_cast<double>(objects[order[first]].size) >= 1.3 * median_of(bodies, 0) ? first : -1;
}

// Counts levels from the sacrum: it is S, then each structure takes the next chain position of
// its type. Two structures of one type in a row are either a level missed between them (a level
// skipped) or, when their centres lie closer than half a vertebra and disc along the spine, two
// pieces at one level (the second takes the first's label). Structures caudal to the sacrum are
// fragments. False (nothing assigned) when there is no sacrum.
bool count_from_sacrum(std::vector<Object>& objects, const std::vector<int>& order,
                       const RefineOptions& opt) {
  const int sacrum = find_sacrum(objects, order);
  if (sacrum < 0) return false;
  std::vector<double> thick[2];
  for (int i : order)
    thick[is_disc(objects[i].label)].push_back(
        Shape(objects[i].m, opt.spacing_h, opt.spacing_w).thickness());
  const double level = median_of(thick[0], 0) + median_of(thick[1], 0);
  const int n_p = static_cast<int>(kSpineChain.size());
  int j = -1;
  const Object* last = nullptr;
  for (std::size_t k = static_cast<std::size_t>(sacrum); k < order.size(); ++k) {
    Object& o = objects[order[k]];
    if (last && is_disc(last->label) == is_disc(o.label)) {
      const Shape a(last->m, opt.spacing_h, opt.spacing_w), b(o.m, opt.spacing_h, opt.spacing_w);
      if (std::hypot(b.h - a.h, b.w - a.w) < 0.5 * level) {
        o.new_label = last->new_label;
        continue;
      }
    }
    int next = j + 1;
    while (next < n_p && chain_is_disc(next) != is_disc(o.label)) ++next;
    if (next >= n_p) break;
    o.new_label = kSpineChain[next];
    j = next;
    last = &o;
  }
  return true;
}

// The assignment of chain positions (in order, of the right type) that agrees most with the
// labels: dynamic programming over (structure, position). Each structure kept gains the votes of
// the label it takes; each skipped level costs `penalty` voxels.
void best_chain(std::vector<Object>& objects, const std::vector<int>& order, double penalty) {
  const int n_c = static_cast<int>(order.size()), n_p = static_cast<int>(kSpineChain.size());
  const double kNeg = -std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(n_c, std::vector<double>(n_p, kNeg));
  std::vector<std::vector<std::pair<int, int>>> from(
      n_c, std::vector<std::pair<int, int>>(n_p, {-1, -1}));
  std::pair<int, int> at = {-1, -1};
  double top = kNeg;
  for (int i = 0; i < n_c; ++i) {
    const Object& o = objects[order[i]];
    for (int j = 0; j < n_p; ++j) {
      if (chain_is_disc(j) != is_disc(o.label)) continue;
      const double gain = static_cast<double>(o.votes[kSpineChain[j]]) + 1e-3 * o.size;
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
  for (; at.first >= 0; at = from[at.first][at.second])
    objects[order[at.first]].new_label = kSpineChain[at.second];
}

}  // namespace

int chain_position(int label) {
  for (std::size_t i = 0; i < kSpineChain.size(); ++i)
    if (kSpineChain[i] == label) return static_cast<int>(i);
  return -1;
}

Shape::Shape(const Moments& m, double sp_h, double sp_w) {
  const double mh = m.h / m.n, mw = m.w / m.n;
  h = mh * sp_h, w = mw * sp_w;
  vhh = std::max(m.hh / m.n - mh * mh, 0.0) * sp_h * sp_h;
  vww = std::max(m.ww / m.n - mw * mw, 0.0) * sp_w * sp_w;
  vhw = (m.hw / m.n - mh * mw) * sp_h * sp_w;
}

double Shape::extent(double uh, double uw) const {
  return std::sqrt(12 * std::max(uh * uh * vhh + uw * uw * vww + 2 * uh * uw * vhw, 0.0));
}

std::pair<double, double> Shape::thin_axis() const {
  const double t = 0.5 * std::atan2(2 * vhw, vhh - vww);  // the major axis' angle
  return {-std::sin(t), std::cos(t)};
}

double Shape::thickness() const {
  const auto [uh, uw] = thin_axis();
  return extent(uh, uw);
}

// The spine's direction at each component (unit (h, w) in mm), from the nearest structure-sized
// component on one side along W to the nearest on the other; (0, 0) where none is near.
std::vector<std::pair<double, double>> spine_directions(const std::vector<Component>& comps,
                                                        const std::vector<Shape>& shapes) {
  std::array<std::int64_t, kNumClasses> largest{};
  for (const auto& c : comps) largest[c.label] = std::max(largest[c.label], c.size);
  std::vector<double> of_type[2];
  for (int l = 1; l <= kMaxLabel; ++l)
    if (largest[l] > 0) of_type[is_disc(l)].push_back(static_cast<double>(largest[l]));
  const double min_size[2] = {0.25 * median_of(of_type[0], 0), 0.25 * median_of(of_type[1], 0)};
  std::vector<std::pair<double, double>> dir(comps.size(), {0.0, 0.0});
  for (std::size_t i = 0; i < comps.size(); ++i) {
    const bool other = !is_disc(comps[i].label);  // the type of its neighbours along the spine
    int lo = -1, hi = -1;
    for (std::size_t j = 0; j < comps.size(); ++j) {
      if (is_disc(comps[j].label) != other || static_cast<double>(comps[j].size) < min_size[other])
        continue;
      const double dw = shapes[j].w - shapes[i].w;
      int& side = dw < 0 ? lo : hi;
      if (side < 0 || std::abs(dw) < std::abs(shapes[side].w - shapes[i].w))
        side = static_cast<int>(j);
    }
    const Shape& a = shapes[lo >= 0 ? lo : i];
    const Shape& b = shapes[hi >= 0 ? hi : i];
    const double n = std::hypot(b.h - a.h, b.w - a.w);
    if (n > 0) dir[i] = {(b.h - a.h) / n, (b.w - a.w) / n};
  }
  return dir;
}

LevelResult assign_levels(std::vector<Component>& comps, const Touching& touching,
                          const RefineOptions& opt) {
  LevelResult r;
  std::vector<Object> objects = group_objects(comps, touching, opt);
  double median = 0;
  std::vector<int> order = find_structures(objects, opt, &median);
  if (!opt.reorder) {
    for (int i : order) objects[i].new_label = objects[i].label;
  } else if (!order.empty()) {
    sort_caudal_first(objects, order);
    // A skipped level costs about one structure's agreement.
    if (!opt.anchor_sacrum || !count_from_sacrum(objects, order, opt))
      best_chain(objects, order, median);
  }
  for (const auto& o : objects) {
    r.structures += o.new_label > 0;
    for (int p : o.parts) {
      comps[p].new_label = o.new_label;
      r.relabelled += o.new_label > 0 && o.new_label != comps[p].label;
    }
  }
  return r;
}

}  // namespace spineparse::refine
