// spineparse: the command-line front end. Exit codes: 0 every case succeeded, 1 some cases
// failed (the run completed), 2 bad graph, arguments or plugins.
#include <CLI/CLI.hpp>
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <filesystem>
#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.hpp"

namespace {
// The networks allocate and free activations of tens to hundreds of MB per layer. With glibc's
// defaults each of those is a fresh mmap (and, from worker threads, a fresh arena heap), so every
// layer page-faults newly zeroed memory: on this stack a third of ResUNet2D's time was spent in
// the kernel. One arena that keeps what it has (no mmap below 1 GB, no trimming below 1 GB) makes
// freed activations reusable; peak memory is then set by the largest case in flight, which bench
// reports. SPINEPARSE_MALLOC=default keeps glibc's behaviour; glibc's own MALLOC_* environment
// variables still win over these (they are read at the first allocation, before main).
void tune_allocator() {
  const char* m = std::getenv("SPINEPARSE_MALLOC");
  if (m && std::string(m) == "default") return;
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
}
}  // namespace

int main(int argc, char** argv) {
  tune_allocator();
  CLI::App app{"spineparse: spine parsing in MR volumes (SpineParseNet) as a streaming pipeline"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "spineparse 0.1.0");
  spineparse::cli::add_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  return spineparse::cli::exit_code();
}
