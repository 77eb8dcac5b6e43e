// glibc malloc policy for the spineparse process (see allocator.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

namespace spineparse::tools::cli {

// Called first thing in main: one arena that keeps freed memory for reuse, its first 1.5 GB
// reserved for transparent huge pages, less the part huge_page_offset keeps to 4 KB pages.
// SPINEPARSE_MALLOC=default leaves glibc's behaviour alone, =no-huge-pages the huge pages out,
// =huge-pages marks the whole reserve for them.
void tune_allocator();

// Free memory in blocks smaller than huge_page bytes, from the text of /proc/buddyinfo (per zone,
// the counts of free blocks of page_size << order bytes, order 0 first).
std::size_t low_order_free_bytes(std::istream& buddyinfo, std::size_t page_size,
                                 std::size_t huge_page);

// Whether a virtio memory balloon among the devices under virtio_devices (a sysfs directory like
// /sys/bus/virtio/devices) negotiated free page reporting: the guest then gives its free blocks of
// a huge page or more back to the host, whose first touch afterwards pays the host's faults.
bool free_page_reporting(const std::string& virtio_devices);

// How many bytes at the start of a heap reserve of `reserve` bytes to keep to 4 KB pages: none
// without free page reporting; with it, as many as the free memory in blocks smaller than a huge
// page (low_order_free, rounded down to 2 MB), which 4 KB pages are taken from first.
std::size_t huge_page_offset(bool reporting, std::size_t low_order_free, std::size_t reserve);

// Whether tune_allocator reserves huge pages here: the kernel gives them to regions that ask (THP
// "always" or "madvise", not "never") and does not count address space strictly
// (vm.overcommit_memory is not 2).
bool huge_pages_worth_reserving();

// What the executor calls after each finished case (RunOptions::after_case): hands the free pages
// back to the system when the resident set has grown more than 10 % past its size at the end of
// the first cases, so that peak memory stays flat over long cohorts while a case's working set
// stays resident. SPINEPARSE_MALLOC=trim trims after every case; empty with
// SPINEPARSE_MALLOC=default (glibc then returns large blocks by itself) or =keep.
std::function<void()> release_after_case();

// When release_after_case trims: never in the first kLearn cases (it learns the resident set at
// their ends, a case's working set), then whenever the resident set is more than 10 % above it.
class TrimPolicy {
 public:
  static constexpr int kLearn = 3;
  // Called after each case with the resident set in bytes (< 0: unknown, never trims).
  bool after_case(std::int64_t resident);

 private:
  int cases_ = 0;
  std::int64_t usual_ = 0;
};

}  // namespace spineparse::tools::cli
