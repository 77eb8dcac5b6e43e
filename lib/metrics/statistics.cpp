#include "metrics/statistics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

#include "spine/labels.hpp"

namespace spineparse::metrics {

std::vector<StructureStats> structure_statistics(const NdArray& labels, const NdArray& image,
                                                 const Geometry& g, Rescale rescale) {
  if (labels.shape() != image.shape() || labels.ndim() != 3)
    throw std::invalid_argument("statistics: labels " + labels.shape_string() + " and image " +
                                image.shape_string() + " differ");
  const std::int64_t D = labels.dim(0), H = labels.dim(1), W = labels.dim(2);
  const auto* l = labels.data<std::uint8_t>();
  auto values = intensities_by_label(labels, image, rescale, label_counts(l, labels.numel()));
  std::vector<std::array<double, 3>> index_sum(kNumClasses, {0, 0, 0});  // file axes i, j, k
  // Row by row: rows without a structure after one vectorised look; in the others each
  // structure's count and column sum, added to its index sums once per row (integers: exact).
  std::int64_t count[kNumClasses] = {}, w_sum[kNumClasses] = {};
  for (std::int64_t d = 0; d < D; ++d)
    for (std::int64_t h = 0; h < H; ++h) {
      const std::uint8_t* row = l + (d * H + h) * W;
      if (!any_structure(row, W)) continue;
      std::uint32_t seen = 0;
      for (std::int64_t w = 0; w < W; ++w) {
        const int c = row[w];
        if (c <= 0 || c >= kNumClasses) continue;
        ++count[c];
        w_sum[c] += w;
        seen |= 1u << c;
      }
      for (int c = 1; c < kNumClasses; ++c) {
        if (!(seen & (1u << c))) continue;
        index_sum[c][0] += static_cast<double>(h * count[c]);
        index_sum[c][1] += static_cast<double>(w_sum[c]);
        index_sum[c][2] += static_cast<double>(d * count[c]);
        count[c] = w_sum[c] = 0;
      }
    }
  const double voxel_mm3 = g.spacing[0] * g.spacing[1] * g.spacing[2];
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<StructureStats> out;
  for (int c = 1; c < kNumClasses; ++c) {
    StructureStats s;
    s.label = c;
    auto& v = values[c];
    s.voxels = static_cast<std::int64_t>(v.size());
    s.volume_mm3 = static_cast<double>(s.voxels) * voxel_mm3;
    s.mean_intensity = s.median_intensity = nan;
    s.centroid = {nan, nan, nan};
    if (!v.empty()) {
      const MeanMedian mm = mean_and_median(v);
      s.mean_intensity = mm.mean;
      s.median_intensity = mm.median;
      for (std::size_t w = 0; w < 3; ++w) {
        s.centroid[w] = g.origin[w];
        for (std::size_t a = 0; a < 3; ++a)
          s.centroid[w] += g.direction[w * 3 + a] * g.spacing[a] * index_sum[c][a] /
                           static_cast<double>(s.voxels);
      }
    }
    out.push_back(s);
  }
  return out;
}

std::string statistics_csv_header() {
  return "case,label,structure,voxels,volume_mm3,mean_intensity,median_intensity,"
         "centroid_x_mm,centroid_y_mm,centroid_z_mm,confidence\n";
}

std::string statistics_csv_rows(const std::string& case_id, const std::vector<StructureStats>& s) {
  std::string out;
  auto num = [](double v) {
    if (std::isnan(v)) return std::string();
    char b[40];
    std::snprintf(b, sizeof b, "%.6g", v);
    return std::string(b);
  };
  std::string id = case_id;  // CSV-quoted when it needs it
  if (id.find_first_of(",\"\n") != std::string::npos) {
    std::string q = "\"";
    for (char ch : id) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    id = q + "\"";
  }
  for (const auto& t : s)
    out += id + "," + std::to_string(t.label) + "," + structure_name(t.label) + "," +
           std::to_string(t.voxels) + "," + num(t.volume_mm3) + "," + num(t.mean_intensity) + "," +
           num(t.median_intensity) + "," + num(t.centroid[0]) + "," + num(t.centroid[1]) + "," +
           num(t.centroid[2]) + "," + num(t.confidence) + "\n";
  return out;
}

}  // namespace spineparse::metrics
