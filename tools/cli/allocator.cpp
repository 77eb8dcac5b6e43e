#include "allocator.hpp"

#include <malloc.h>

#include <cstdlib>
#include <string>

namespace spineparse::cli {

namespace {
std::string mode() {
  const char* m = std::getenv("SPINEPARSE_MALLOC");
  return m ? m : "";
}
}  // namespace

// The networks allocate and free activations of tens to hundreds of MB per layer. With glibc's
// defaults each of those is a fresh mmap (and, from worker threads, a fresh arena heap), so every
// layer page-faults newly zeroed memory: on this stack a third of ResUNet2D's time was spent in
// the kernel. One arena that keeps what it has (no mmap below 1 GB, no trimming below 1 GB) makes
// freed activations reusable; peak memory is then set by the largest case in flight, which bench
// reports. glibc's own MALLOC_* environment variables still win over these (they are read at the
// first allocation, before main).
void tune_allocator() {
  if (mode() == "default") return;
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
}

std::function<void()> release_after_case() {
  const std::string m = mode();
  if (m == "default" || m == "keep") return {};
  return [] { malloc_trim(64 << 20); };
}

}  // namespace spineparse::cli
