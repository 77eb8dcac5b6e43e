// When the CLI hands free memory back after a case: it keeps a case's working set resident and
// trims only when the resident set grows past it; and the heap it sets up.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

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

// tune_allocator (what main calls first) reserves the heap's first 1.5 GB as address space marked
// for transparent huge pages, where the kernel has them and overcommit is not strict: smaps shows a
// heap mapping of at least 1 GB with the "hg" flag.
TEST(Allocator, TheHeapIsReservedForHugePages) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers replace malloc";
#endif
  if (const char* m = std::getenv("SPINEPARSE_MALLOC"); m && *m)
    GTEST_SKIP() << "SPINEPARSE_MALLOC set";
  if (!spineparse::tools::cli::huge_pages_worth_reserving())
    GTEST_SKIP() << "no transparent huge pages or strict overcommit here: nothing is reserved";
  spineparse::tools::cli::tune_allocator();
  std::ifstream smaps("/proc/self/smaps");
  ASSERT_TRUE(smaps) << "no /proc/self/smaps";
  std::string line;
  bool heap = false, found = false;
  std::uint64_t size_kb = 0;
  while (std::getline(smaps, line)) {
    if (line.find('-') < line.find(' ') && line.find(' ') != std::string::npos &&
        std::isxdigit(static_cast<unsigned char>(line[0])))
      heap = line.find("[heap]") != std::string::npos;
    else if (heap && line.rfind("Size:", 0) == 0)
      size_kb = std::stoull(line.substr(5));
    else if (heap && line.rfind("VmFlags:", 0) == 0 && line.find(" hg") != std::string::npos &&
             size_kb >= (1u << 20))
      found = true;
  }
  EXPECT_TRUE(found) << "no heap mapping of >= 1 GB marked for huge pages";
}
