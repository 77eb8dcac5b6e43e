#include "commands.hpp"

#include <cstdio>

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
