// When the CLI hands free memory back after a case: it keeps a case's working set resident and
// trims only when the resident set grows past it; and the heap it sets up.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
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

TEST(Allocator, LowOrderFreeMemoryCountsTheBlocksBelowAHugePage) {
  // Two zones, orders 0..10 of 4 KB pages: orders 0..8 (4 KB .. 1 MB) are below 2 MB.
  std::istringstream buddyinfo(
      "Node 0, zone      DMA      1      0      0      0      0      0      0      0      1      1 "
      "     3\n"
      "Node 0, zone   Normal     10      2      0      0      0      0      0      0      3      5 "
      "   900\n");
  const std::size_t kb = 1024, mb = kb * kb;
  EXPECT_EQ(spineparse::tools::cli::low_order_free_bytes(buddyinfo, 4 * kb, 2 * mb),
            (1 + 10) * 4 * kb + 2 * 8 * kb + (1 + 3) * mb);
  std::istringstream empty("");
  EXPECT_EQ(spineparse::tools::cli::low_order_free_bytes(empty, 4 * kb, 2 * mb), 0u);
}

namespace {
void write_file(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << text << "\n";
}
}  // namespace

TEST(Allocator, FreePageReportingIsReadFromTheBalloonsNegotiatedFeatures) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("sp_virtio_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  using spineparse::tools::cli::free_page_reporting;
  EXPECT_FALSE(free_page_reporting((dir / "missing").string()));
  const std::string with_bit5 = "0000010" + std::string(57, '0');
  write_file(dir / "virtio0" / "device", "0x0002");  // a block device: its bit 5 means otherwise
  write_file(dir / "virtio0" / "features", with_bit5);
  write_file(dir / "virtio1" / "device", "0x0005");  // a balloon without reporting
  write_file(dir / "virtio1" / "features", "0110000" + std::string(57, '0'));
  EXPECT_FALSE(free_page_reporting(dir.string()));
  write_file(dir / "virtio1" / "features", "0110010" + std::string(57, '0'));
  EXPECT_TRUE(free_page_reporting(dir.string()));
  fs::remove_all(dir);
}

TEST(Allocator, HugePagesStartAfterTheSmallFreeBlocksOnlyUnderFreePageReporting) {
  using spineparse::tools::cli::huge_page_offset;
  const std::size_t mb = std::size_t{1} << 20, reserve = 1536 * mb;
  EXPECT_EQ(huge_page_offset(false, 700 * mb, reserve), 0u);
  EXPECT_EQ(huge_page_offset(true, 701 * mb + 5, reserve), 700 * mb);  // whole 2 MB pages
  EXPECT_EQ(huge_page_offset(true, 5000 * mb, reserve), reserve);
  EXPECT_EQ(huge_page_offset(true, 0, reserve), 0u);
}

// tune_allocator (what main calls first) reserves the heap's first 1.5 GB as address space for
// transparent huge pages, where the kernel has them and overcommit is not strict: smaps shows heap
// mappings of at least 1 GB in all marked "hg" (huge pages) or "nh" (4 KB pages); "nh" only under
// free page reporting, for as much as the small free blocks hold.
TEST(Allocator, TheHeapIsReservedForHugePages) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers replace malloc";
#endif
  if (const char* m = std::getenv("SPINEPARSE_MALLOC"); m && *m)
    GTEST_SKIP() << "SPINEPARSE_MALLOC set";
  if (!spineparse::tools::cli::huge_pages_worth_reserving())
    GTEST_SKIP() << "no transparent huge pages or strict overcommit here: nothing is reserved";
  const bool reporting = spineparse::tools::cli::free_page_reporting("/sys/bus/virtio/devices");
  spineparse::tools::cli::tune_allocator();
  std::ifstream smaps("/proc/self/smaps");
  ASSERT_TRUE(smaps) << "no /proc/self/smaps";
  std::string line;
  bool heap = false;
  std::uint64_t size_kb = 0, huge_kb = 0, small_kb = 0;
  while (std::getline(smaps, line)) {
    if (line.find('-') < line.find(' ') && line.find(' ') != std::string::npos &&
        std::isxdigit(static_cast<unsigned char>(line[0])))
      heap = line.find("[heap]") != std::string::npos;
    else if (heap && line.rfind("Size:", 0) == 0)
      size_kb = std::stoull(line.substr(5));
    else if (heap && line.rfind("VmFlags:", 0) == 0 && line.find(" hg") != std::string::npos)
      huge_kb += size_kb;
    else if (heap && line.rfind("VmFlags:", 0) == 0 && line.find(" nh") != std::string::npos)
      small_kb += size_kb;
  }
  EXPECT_GE(huge_kb + small_kb, 1u << 20) << "no 1 GB of the heap marked for huge or 4 KB pages";
  if (!reporting) {
    EXPECT_EQ(small_kb, 0u) << "4 KB pages asked for without free page reporting";
    EXPECT_GE(huge_kb, 1u << 20);
  }
}
