// spineparse bench: resident memory, read and sampled while the timed run goes on.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "bench.hpp"

namespace spineparse::tools::cli::bench {

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;  // kilobytes on Linux
}

double current_rss_mb() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long pages = 0, resident = 0;
  const int got = std::fscanf(f, "%ld %ld", &pages, &resident);
  std::fclose(f);
  return got == 2 ? resident * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0)
                  : 0.0;
}

json memory_summary(const std::vector<std::pair<double, double>>& s, double interval_s) {
  json m = {{"samples", s.size()}, {"interval_s", interval_s}};
  if (s.empty()) return m;
  std::vector<double> v;
  for (const auto& x : s) v.push_back(x.second);
  const double mid_t = s.back().first / 2;
  double first = 0, second = 0;
  for (const auto& [t, mb] : s) {
    double& half = t < mid_t ? first : second;
    half = std::max(half, mb);
  }
  std::sort(v.begin(), v.end());
  m["max_mb"] = v.back();
  m["median_mb"] = v[v.size() / 2];
  m["p95_mb"] = v[std::min(v.size() - 1, static_cast<std::size_t>(0.95 * v.size()))];
  m["first_half_max_mb"] = first;
  m["second_half_max_mb"] = second;
  m["second_half_vs_first_half"] = first > 0 ? second / first : 0.0;
  return m;
}

}  // namespace spineparse::tools::cli::bench
