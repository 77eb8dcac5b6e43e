#include "io/dicom_slices.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace spineparse::io {

std::vector<Slice> slices_in_order(const std::vector<Placed>& files, const std::string& what) {
  if (!files.front().has_orientation)
    throw std::runtime_error(what + ": no ImageOrientationPatient in " + files.front().file);
  const auto& o0 = files.front().orientation;
  const std::array<double, 3> n{o0[1] * o0[5] - o0[2] * o0[4], o0[2] * o0[3] - o0[0] * o0[5],
                                o0[0] * o0[4] - o0[1] * o0[3]};
  std::vector<Slice> out;
  for (const auto& f : files) {
    if (!f.has_position) throw std::runtime_error(what + ": no ImagePositionPatient in " + f.file);
    if (!f.has_orientation)
      throw std::runtime_error(what + ": no ImageOrientationPatient in " + f.file);
    for (std::size_t i = 0; i < 6; ++i)
      if (std::abs(f.orientation[i] - o0[i]) > 1e-3)
        throw std::runtime_error(what + ": slices in different orientations (" + f.file + " and " +
                                 files.front().file + ")");
    const auto& p = f.position;
    out.push_back({p[0] * n[0] + p[1] * n[1] + p[2] * n[2], f.file});
  }
  std::sort(out.begin(), out.end(), [](const Slice& a, const Slice& b) { return a.at < b.at; });
  std::vector<double> gaps;
  for (std::size_t i = 1; i < out.size(); ++i) gaps.push_back(out[i].at - out[i - 1].at);
  if (gaps.empty()) return out;
  std::vector<double> sorted = gaps;
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2),
                   sorted.end());
  const double typical = sorted[sorted.size() / 2];
  for (std::size_t i = 0; i < gaps.size(); ++i)  // a slice twice first: it may leave a gap too
    if (gaps[i] < 1e-3)
      throw std::runtime_error(what + ": two slices at one position (" + out[i].file + " and " +
                               out[i + 1].file + ")");
  for (std::size_t i = 0; i < gaps.size(); ++i) {
    char buf[160];
    if (std::abs(gaps[i] - typical) > 0.05 * typical + 1e-3) {
      std::snprintf(buf, sizeof buf,
                    "%.3g mm between slices %zu and %zu where the others are %.3g mm", gaps[i],
                    i + 1, i + 2, typical);
      throw std::runtime_error(what + ": uneven slice spacing, " + buf + " (a missing slice?) at " +
                               out[i + 1].file);
    }
  }
  return out;
}

}  // namespace spineparse::io
