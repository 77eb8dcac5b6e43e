// A case's measurement SR against its run's measurements.csv (test_cli, test_serve).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "cli_util.hpp"
#include "metrics/measure_sr.hpp"
#include "spineparse/files.hpp"

namespace cli_test {

// Every anterior height the SR at `sr_path` holds equals case `case_id`'s value in the CSV
// (1e-3 relative), and there are at least five.
inline void expect_sr_heights_as_in_csv(const std::string& sr_path, const std::string& csv_path,
                                        const std::string& case_id) {
  const auto values = spineparse::metrics::read_measurement_sr(sr_path);
  const auto csv = spineparse::read_file(csv_path);
  int heights = 0;
  for (const auto& v : values)
    if (v.code == "AH") {
      ++heights;
      const double want = csv_number(csv, case_id, v.group, "anterior_height_mm");
      EXPECT_NEAR(v.value, want, 1e-3 * want + 1e-3) << case_id << " " << v.group;
    }
  EXPECT_GE(heights, 5) << case_id;
}

}  // namespace cli_test
