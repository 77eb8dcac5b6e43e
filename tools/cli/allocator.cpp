#include "allocator.hpp"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <istream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>

namespace spineparse::tools::cli {

namespace {
std::string mode() {
  const char* m = std::getenv("SPINEPARSE_MALLOC");
  return m ? m : "";
}
}  // namespace

// The networks allocate and free activations of tens to hundreds of MB per layer. With glibc's
// defaults each of those is a fresh mmap (and, from worker threads, a fresh arena heap), so every
// layer page-faults newly zeroed memory: on this stack a third of ResUNet2D's time was spent in
// the kernel. One arena that keeps what it has (no mmap below 2 GB, no trimming below 2 GB) makes
// freed activations reusable; peak memory is then set by the largest case in flight, which bench
// reports. glibc's own MALLOC_* environment variables still win over these (they are read at the
// first allocation, before main).
//
// The first case still faults its working set in (the GCSN alone about 1 GB at 880x880 cases).
// What a fault costs depends on where the kernel takes the page from. On bare metal and most VMs,
// huge pages are cheaper: one fault per 2 MB. So the first kHugeReserve bytes of the heap are
// reserved up front (address space only, no memory) and marked for transparent huge pages (2 MB
// pages where the kernel allows them: THP "always" or "madvise"), what glibc's
// glibc.malloc.hugetlb=1 tunable would do but only from the environment at start-up. Under a
// virtio balloon with free page reporting, though, the guest hands every free block of 2 MB or
// more back to the host, and the first touch of such a block pays the host's faults (2.3-2.8 s
// per GB measured), while pages from the smaller free blocks the guest kept cost 0.3 s per GB: 4 KB
// pages come from those first, huge pages never. There the reserve's first part, as large as the
// free memory in blocks below 2 MB (/proc/buddyinfo), is kept to 4 KB pages and only the rest is
// marked for huge pages (huge_page_offset). SPINEPARSE_MALLOC=no-huge-pages leaves the marking
// out, =huge-pages marks the whole reserve whatever the machine; a kernel without transparent huge
// pages or with strict overcommit (vm.overcommit_memory=2) gets neither.
namespace {
constexpr std::size_t kHugeReserve = std::size_t{1536} << 20;
constexpr std::size_t kHugePage = std::size_t{2} << 20;
constexpr int kKeepBelow = 2147483647;  // mallopt's largest threshold (an int), about 2 GB

// The first line of a /proc or /sys file ("" when unreadable).
std::string first_line(const char* path) {
  std::FILE* f = std::fopen(path, "r");
  if (!f) return "";
  char buf[256] = {};
  const bool ok = std::fgets(buf, sizeof buf, f) != nullptr;
  std::fclose(f);
  return ok ? buf : "";
}
}  // namespace

// Under vm.overcommit_memory=2 a reserved and unused heap would still use up the commit limit.
bool huge_pages_worth_reserving() {
  const std::string thp = first_line("/sys/kernel/mm/transparent_hugepage/enabled");
  const std::string overcommit = first_line("/proc/sys/vm/overcommit_memory");
  return thp.find("[never]") == std::string::npos && !thp.empty() && overcommit.rfind('2', 0) != 0;
}

std::size_t low_order_free_bytes(std::istream& buddyinfo, std::size_t page_size,
                                 std::size_t huge_page) {
  std::size_t total = 0;
  std::string line;
  while (std::getline(buddyinfo, line)) {
    const auto zone = line.find("zone");
    if (zone == std::string::npos) continue;
    std::istringstream fields(line.substr(zone + 4));
    std::string name;
    fields >> name;
    std::size_t count = 0, block = page_size;
    for (; fields >> count && block < huge_page; block *= 2)
      total += count * block;
  }
  return total;
}

bool free_page_reporting(const std::string& virtio_devices) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (fs::directory_iterator it(virtio_devices, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string device = first_line((it->path() / "device").c_str());
    const std::string features = first_line((it->path() / "features").c_str());
    // device 5: the memory balloon; feature bit 5 (the sixth character): VIRTIO_BALLOON_F_REPORTING
    if (device.rfind("0x0005", 0) == 0 && features.size() > 5 && features[5] == '1') return true;
  }
  return false;
}

std::size_t huge_page_offset(bool reporting, std::size_t low_order_free, std::size_t reserve) {
  if (!reporting) return 0;
  return std::min(reserve, low_order_free / kHugePage * kHugePage);
}

namespace {
// Where this machine's heap reserve starts its huge pages (huge_page_offset from what the kernel
// reports now).
std::size_t huge_page_offset_here() {
  if (!free_page_reporting("/sys/bus/virtio/devices")) return 0;
  std::ifstream buddyinfo("/proc/buddyinfo");
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return huge_page_offset(true, low_order_free_bytes(buddyinfo, page, kHugePage), kHugeReserve);
}

void reserve_huge_pages(bool everywhere) {
  if (!huge_pages_worth_reserving()) return;
  void* p = std::malloc(kHugeReserve);  // the heap grows by this much (only address space)
  if (!p) return;
  const auto begin = (reinterpret_cast<std::uintptr_t>(p) + kHugePage - 1) & ~(kHugePage - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(p) + kHugeReserve) & ~(kHugePage - 1);
  const std::uintptr_t split = std::min(end, begin + (everywhere ? 0 : huge_page_offset_here()));
  // THP "always" would give the 4 KB part huge pages too, unless told not to.
  if (split > begin) madvise(reinterpret_cast<void*>(begin), split - begin, MADV_NOHUGEPAGE);
  if (end > split) madvise(reinterpret_cast<void*>(split), end - split, MADV_HUGEPAGE);
  std::free(p);  // back to the top of the heap, kept (below the trim threshold)
}
}  // namespace

void tune_allocator() {
  const std::string m = mode();
  if (m == "default") return;
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, kKeepBelow);
  mallopt(M_TRIM_THRESHOLD, kKeepBelow);
  mallopt(M_TOP_PAD, 64 << 20);
  if (m != "no-huge-pages") reserve_huge_pages(m == "huge-pages");
}

namespace {
std::int64_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return -1;
  long size = 0, resident = 0;
  const int n = std::fscanf(f, "%ld %ld", &size, &resident);
  std::fclose(f);
  return n == 2 ? static_cast<std::int64_t>(resident) * sysconf(_SC_PAGESIZE) : -1;
}
}  // namespace

// Trimming hands free pages back, and the next case faults them in again, zeroed: on 880x880x12
// cases the GCSN then ran 0.16 s (18 %) slower inside the pipeline than alone. Never trimming let
// resident memory creep (demo networks, 200 cases: the second half's peak 1.23x the first's).
// So the free pages are kept while the resident set stays within 10 % of what it was at the end
// of the first cases (the working set of a case), and trimmed when it grows past that.
bool TrimPolicy::after_case(std::int64_t resident) {
  if (resident < 0) return false;
  if (cases_++ < kLearn) {
    usual_ = std::max(usual_, resident);
    return false;
  }
  return resident > usual_ + usual_ / 10;
}

std::function<void()> release_after_case() {
  const std::string m = mode();
  if (m == "default" || m == "keep") return {};
  if (m == "trim") return [] { malloc_trim(64 << 20); };
  struct State {
    std::mutex mu;
    TrimPolicy policy;
  };
  auto state = std::make_shared<State>();
  return [state] {
    const std::int64_t rss = resident_bytes();
    std::lock_guard<std::mutex> lk(state->mu);
    if (state->policy.after_case(rss)) malloc_trim(64 << 20);
  };
}

}  // namespace spineparse::tools::cli
