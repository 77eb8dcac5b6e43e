#include "commands.hpp"

#include <cstdio>
#include <filesystem>

#include "build_paths.hpp"
#include "spineparse/registry.hpp"

namespace spineparse::cli {

namespace {
int g_exit_code = 0;
}

int exit_code() { return g_exit_code; }
void set_exit_code(int code) { g_exit_code = code; }

bool load_default_plugins(Registry& registry, const std::vector<std::string>& extra_folders) {
  std::vector<std::string> errors;
  auto folders = default_plugin_folders();
  folders.insert(folders.end(), extra_folders.begin(), extra_folders.end());
  for (const auto& f : folders) registry.load_folder(f, &errors);
  for (const auto& e : errors) std::fprintf(stderr, "error: %s\n", e.c_str());
  return errors.empty();
}

std::string data_dir() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path installed =
        (exe.parent_path() / SPINEPARSE_DATA_DIR_FROM_BIN).lexically_normal();
    if (fs::is_directory(installed / "graphs", ec)) return installed.string();
  }
  return SPINEPARSE_SOURCE_DIR;
}

void add_commands(CLI::App& app) {
  add_run(app);
  add_validate(app);
  add_stages(app);
  add_synth(app);
  add_evaluate(app);
  add_bench(app);
#ifdef SPINEPARSE_WITH_TORCH
  add_import(app);
  add_train(app);
#endif
}

}  // namespace spineparse::cli
