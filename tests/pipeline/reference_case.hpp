// What the pipeline tests share: the original's reference case (../shared/reference) as a
// one-case cohort with every stage kind registered, and the comparisons its tolerances use.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>

#include "coarse_stages.hpp"
#include "fine_stages.hpp"
#include "io_stages.hpp"
#include "metrics_stages.hpp"
#include "refine_stages.hpp"
#include "spineparse/registry.hpp"
#include "test_util.hpp"

namespace spineparse::testing {

inline std::string ref(const std::string& f) { return reference_dir() + "/" + f; }

// Every built-in stage kind in `registry`, and the reference scan as IN/original_mr/Case1.nii.gz.
inline void set_up_reference_case(Registry& registry, const std::filesystem::path& in) {
  register_io_stages(registry);
  register_coarse_stages(registry);
  register_fine_stages(registry);
  register_refine_stages(registry);
  register_metrics_stages(registry);
  std::filesystem::create_directories(in / "original_mr");
  std::filesystem::copy_file(ref("raw.nii.gz"), in / "original_mr" / "Case1.nii.gz");
}

struct Diff {
  double mean = 0, max = 0;
};
inline Diff diff(const float* a, const float* b, std::int64_t n) {
  Diff d;
  for (std::int64_t i = 0; i < n; ++i) {
    const double e = std::abs(static_cast<double>(a[i]) - b[i]);
    d.mean += e;
    d.max = std::max(d.max, e);
  }
  d.mean /= static_cast<double>(n);
  return d;
}

// The share of n labels that are equal.
inline double label_agreement(const std::uint8_t* a, const std::uint8_t* b, std::int64_t n) {
  std::int64_t same = 0;
  for (std::int64_t i = 0; i < n; ++i) same += a[i] == b[i];
  return static_cast<double>(same) / static_cast<double>(n);
}

}  // namespace spineparse::testing
