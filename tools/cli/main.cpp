// spineparse: the command-line front end. Exit codes: 0 every case succeeded, 1 some cases
// failed (the run completed), 2 bad graph, arguments, plugins or a busy output folder, 130/143
// the run was stopped by SIGINT/SIGTERM (its record lists the cases that did not run).
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "allocator.hpp"
#include "commands.hpp"

namespace {

// Ends the process once a command has finished: every output it made is complete and closed by
// then (files are written whole, then renamed), so what normal exit would still do is static
// teardown, chiefly LibTorch deregistering its thousands of operators one by one (about 0.1 s
// per process). Flushes the C streams and exits without it. Sanitizer builds exit normally, so
// that LeakSanitizer still runs its check at exit.
int finish(int code) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return code;
#else
  std::fflush(nullptr);
  std::_Exit(code);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  spineparse::tools::cli::tune_allocator();
  // A file size limit (ulimit -f) makes writes fail with EFBIG, which fails the case being
  // written, instead of killing the whole run.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"spineparse: spine parsing in MR volumes (SpineParseNet) as a streaming pipeline"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "spineparse 0.1.0");
  spineparse::tools::cli::add_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return finish(app.exit(e));
  } catch (const CLI::CallForAllHelp& e) {
    return finish(app.exit(e));
  } catch (const CLI::CallForVersion& e) {
    return finish(app.exit(e));
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return finish(2);
  }
  return finish(spineparse::tools::cli::exit_code());
}
