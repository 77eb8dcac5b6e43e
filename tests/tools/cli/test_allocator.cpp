// When the CLI hands free memory back after a case: it keeps a case's working set resident and
// trims only when the resident set grows past it.
#include <gtest/gtest.h>

#include "allocator.hpp"

using spineparse::tools::cli::TrimPolicy;

TEST(TrimPolicy, LearnsTheFirstCasesThenTrimsOnlyPastTenPercentAboveThem) {
  TrimPolicy p;
  const std::int64_t mb = 1 << 20;
  // The first cases set the usual resident set (their largest): never trimmed, however large.
  EXPECT_FALSE(p.after_case(900 * mb));
  EXPECT_FALSE(p.after_case(1000 * mb));
  EXPECT_FALSE(p.after_case(5000 * mb));
  // Then: kept up to 10 % above it, trimmed beyond, every time it is beyond.
  EXPECT_FALSE(p.after_case(5000 * mb));
  EXPECT_FALSE(p.after_case(5500 * mb));
  EXPECT_TRUE(p.after_case(5501 * mb));
  EXPECT_TRUE(p.after_case(6000 * mb));
  EXPECT_FALSE(p.after_case(4000 * mb));
  EXPECT_FALSE(p.after_case(-1));  // unknown: never trims
}

TEST(TrimPolicy, CasesWithAnUnknownResidentSetAreNotLearnt) {
  TrimPolicy p;
  const std::int64_t mb = 1 << 20;
  for (int i = 0; i < TrimPolicy::kLearn; ++i) EXPECT_FALSE(p.after_case(-1));
  for (int i = 0; i < TrimPolicy::kLearn; ++i) EXPECT_FALSE(p.after_case(100 * mb));  // learnt
  EXPECT_TRUE(p.after_case(200 * mb));
}
