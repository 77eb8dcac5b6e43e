#include "io/orientation.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <utility>

namespace spineparse::io {

namespace {

// World axis (0: R-L, 1: A-P, 2: S-I) and sign (+1 toward R, A, S) of a code letter, or -1.
int world_axis(char c) {
  switch (c) {
    case 'R':
    case 'L':
      return 0;
    case 'A':
    case 'P':
      return 1;
    case 'S':
    case 'I':
      return 2;
    default:
      return -1;
  }
}
char letter(int world, bool pos) {
  static const char* k = "LRPAIS";  // negative, positive per world axis
  return k[2 * world + (pos ? 1 : 0)];
}

}  // namespace

bool valid_axis_codes(const std::string& codes, std::string* why) {
  std::array<bool, 3> seen{false, false, false};
  bool ok = codes.size() == 3;
  for (std::size_t i = 0; ok && i < 3; ++i) {
    const int w = world_axis(codes[i]);
    ok = w >= 0 && !seen[static_cast<std::size_t>(w)];
    if (ok) seen[static_cast<std::size_t>(w)] = true;
  }
  if (!ok && why)
    *why = "'" + codes + "' is not three letters naming R/L, A/P and S/I once each (e.g. PIL, RAS)";
  return ok;
}

std::string axis_codes(const Geometry& g) {
  // |component| of axis a along world axis w, in RAS (ITK's LPS with x and y negated).
  double m[3][3];
  for (int a = 0; a < 3; ++a)
    for (int w = 0; w < 3; ++w) m[a][w] = g.direction[static_cast<std::size_t>(w * 3 + a)];
  std::string codes = "???";
  std::array<bool, 3> axis_used{}, world_used{};
  for (int round = 0; round < 3; ++round) {  // the largest remaining component first
    int best_a = -1, best_w = -1;
    double best = -1;
    for (int a = 0; a < 3; ++a)
      for (int w = 0; w < 3; ++w)
        if (!axis_used[a] && !world_used[w] && std::abs(m[a][w]) > best) {
          best = std::abs(m[a][w]);
          best_a = a;
          best_w = w;
        }
    if (!(best > 1e-6)) throw std::invalid_argument("the direction matrix is singular");
    axis_used[static_cast<std::size_t>(best_a)] = world_used[static_cast<std::size_t>(best_w)] =
        true;
    const double ras = best_w < 2 ? -m[best_a][best_w] : m[best_a][best_w];
    codes[static_cast<std::size_t>(best_a)] = letter(best_w, ras > 0);
  }
  return codes;
}

bool Reorientation::identity() const {
  return source == std::array<int, 3>{0, 1, 2} && !flip[0] && !flip[1] && !flip[2];
}

Reorientation Reorientation::inverse() const {
  Reorientation inv;
  for (int t = 0; t < 3; ++t) {
    inv.source[static_cast<std::size_t>(source[t])] = t;
    inv.flip[static_cast<std::size_t>(source[t])] = flip[t];
  }
  return inv;
}

std::string Reorientation::describe() const {
  if (identity()) return "none";
  static const char* names = "ijk";
  std::string s;
  for (int t = 0; t < 3; ++t) {
    if (t) s += ", ";
    s += std::string(1, names[t]) + " <- " + (flip[t] ? "-" : "") + names[source[t]];
  }
  return s;
}

Reorientation plan_reorientation(const std::string& from, const std::string& to) {
  std::string why;
  if (!valid_axis_codes(from, &why) || !valid_axis_codes(to, &why))
    throw std::invalid_argument(why);
  Reorientation r;
  for (int t = 0; t < 3; ++t) {
    const int s = axis_along(from, to[static_cast<std::size_t>(t)]);
    r.source[static_cast<std::size_t>(t)] = s;
    r.flip[static_cast<std::size_t>(t)] =
        from[static_cast<std::size_t>(s)] != to[static_cast<std::size_t>(t)];
  }
  return r;
}

int axis_along(const std::string& codes, char c) {
  for (int a = 0; a < static_cast<int>(codes.size()); ++a)
    if (world_axis(codes[static_cast<std::size_t>(a)]) == world_axis(c)) return a;
  return -1;
}

std::string plane_of(char c) {
  switch (world_axis(c)) {
    case 0:
      return "sagittal";
    case 1:
      return "coronal";
    case 2:
      return "axial";
    default:
      return "unknown";
  }
}

namespace {

// Copies elements of `bytes` bytes from src ([lead, D, H, W]) to dst in the new orientation.
template <std::size_t bytes>
void copy_reoriented(const unsigned char* src, unsigned char* dst, std::int64_t lead,
                     const std::array<std::int64_t, 3>& in_ijk, const Reorientation& r) {
  // Strides of the source along its file axes i, j, k ([D,H,W] = k, i, j).
  const std::array<std::int64_t, 3> stride{in_ijk[1], 1, in_ijk[0] * in_ijk[1]};
  std::array<std::int64_t, 3> out_ijk{}, step{}, start{};
  for (int t = 0; t < 3; ++t) {
    const auto s = static_cast<std::size_t>(r.source[static_cast<std::size_t>(t)]);
    out_ijk[static_cast<std::size_t>(t)] = in_ijk[s];
    step[static_cast<std::size_t>(t)] =
        r.flip[static_cast<std::size_t>(t)] ? -stride[s] : stride[s];
    start[static_cast<std::size_t>(t)] =
        r.flip[static_cast<std::size_t>(t)] ? (in_ijk[s] - 1) * stride[s] : 0;
  }
  const std::int64_t volume = in_ijk[0] * in_ijk[1] * in_ijk[2];
  for (std::int64_t l = 0; l < lead; ++l) {
    const unsigned char* s0 = src + l * volume * bytes;
    unsigned char* d = dst + l * volume * bytes;
    for (std::int64_t k = 0; k < out_ijk[2]; ++k)
      for (std::int64_t i = 0; i < out_ijk[0]; ++i) {
        std::int64_t off = start[0] + start[1] + start[2] + k * step[2] + i * step[0];
        for (std::int64_t j = 0; j < out_ijk[1]; ++j, off += step[1], d += bytes)
          std::memcpy(d, s0 + off * static_cast<std::int64_t>(bytes), bytes);
      }
  }
}

}  // namespace

NdArrayPtr reorient(const NdArray& a, const Reorientation& r) {
  if (a.ndim() < 3) throw std::invalid_argument("reorient needs a volume [.., D, H, W]");
  const std::size_t n = a.ndim();
  const std::array<std::int64_t, 3> in_ijk{a.dim(n - 2), a.dim(n - 1), a.dim(n - 3)};
  std::int64_t lead = 1;
  for (std::size_t d = 0; d + 3 < n; ++d) lead *= a.dim(d);
  std::vector<std::int64_t> shape(a.shape().begin(), a.shape().end() - 3);
  std::array<std::int64_t, 3> out{};
  for (int t = 0; t < 3; ++t)
    out[static_cast<std::size_t>(t)] =
        in_ijk[static_cast<std::size_t>(r.source[static_cast<std::size_t>(t)])];
  shape.insert(shape.end(), {out[2], out[0], out[1]});
  auto b = std::make_shared<NdArray>(a.dtype(), shape);
  const auto* src = static_cast<const unsigned char*>(a.raw());
  auto* dst = static_cast<unsigned char*>(b->raw());
  const std::int64_t count = lead * in_ijk[0] * in_ijk[1] * in_ijk[2];
  if (count == 0) return b;
  const std::size_t elem = a.nbytes() / static_cast<std::size_t>(count);
  // The copy for each element size (memcpy of a constant size: one load and store).
  constexpr std::pair<std::size_t, decltype(&copy_reoriented<1>)> kCopies[] = {
      {1, &copy_reoriented<1>},
      {2, &copy_reoriented<2>},
      {4, &copy_reoriented<4>},
      {8, &copy_reoriented<8>}};
  const auto copy = std::find_if(std::begin(kCopies), std::end(kCopies),
                                 [&](const auto& c) { return c.first == elem; });
  if (copy == std::end(kCopies)) throw std::invalid_argument("reorient: unsupported element size");
  copy->second(src, dst, lead, in_ijk, r);
  return b;
}

Geometry reorient(const Geometry& g, const std::array<std::int64_t, 3>& size_ijk,
                  const Reorientation& r) {
  Geometry out = g;
  for (int t = 0; t < 3; ++t) {
    const auto s = static_cast<std::size_t>(r.source[static_cast<std::size_t>(t)]);
    const double sign = r.flip[static_cast<std::size_t>(t)] ? -1.0 : 1.0;
    out.spacing[static_cast<std::size_t>(t)] = g.spacing[s];
    for (std::size_t w = 0; w < 3; ++w)
      out.direction[w * 3 + static_cast<std::size_t>(t)] = sign * g.direction[w * 3 + s];
    if (r.flip[static_cast<std::size_t>(t)])  // index 0 of t is the source's last index along s
      for (std::size_t w = 0; w < 3; ++w)
        out.origin[w] +=
            g.direction[w * 3 + s] * g.spacing[s] * static_cast<double>(size_ijk[s] - 1);
  }
  return out;
}

PatientToIndex::PatientToIndex(const Geometry& g) {
  double m[9];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) m[r * 3 + c] = g.direction[r * 3 + c] * g.spacing[c];
  const double det = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
                     m[2] * (m[3] * m[7] - m[4] * m[6]);
  if (!(std::abs(det) > 0)) throw std::invalid_argument("singular grid (direction x spacing)");
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {  // inv[i][j] = cofactor[j][i] / det
      const int r0 = (j + 1) % 3, r1 = (j + 2) % 3, c0 = (i + 1) % 3, c1 = (i + 2) % 3;
      inv_[i * 3 + j] = (m[r0 * 3 + c0] * m[r1 * 3 + c1] - m[r0 * 3 + c1] * m[r1 * 3 + c0]) / det;
    }
  for (int r = 0; r < 3; ++r) origin_[r] = g.origin[r];
}

std::array<double, 3> PatientToIndex::operator()(const std::array<double, 3>& p) const {
  std::array<double, 3> idx{};
  for (int c = 0; c < 3; ++c)
    for (int r = 0; r < 3; ++r) idx[c] += inv_[c * 3 + r] * (p[r] - origin_[r]);
  return idx;
}

}  // namespace spineparse::io
