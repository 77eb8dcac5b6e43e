// glibc malloc policy for the spineparse process (see allocator.cpp).
#pragma once

#include <functional>

namespace spineparse::cli {

// Called first thing in main: one arena that keeps freed memory for reuse.
// SPINEPARSE_MALLOC=default leaves glibc's behaviour alone.
void tune_allocator();

// What the executor calls after each finished case (RunOptions::after_case): hands the free pages
// back to the system so that peak memory stays flat over long cohorts. Empty with
// SPINEPARSE_MALLOC=default (glibc then returns large blocks by itself) or =keep.
std::function<void()> release_after_case();

}  // namespace spineparse::cli
