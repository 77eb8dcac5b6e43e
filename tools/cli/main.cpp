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
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  return spineparse::tools::cli::exit_code();
}
