// Subcommands of the spineparse CLI; each lives in its own cmd_*.cpp.
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <string>
#include <vector>

namespace spineparse {
class Registry;
}

namespace spineparse::tools::cli {

void add_commands(CLI::App& app);
int exit_code();
void set_exit_code(int code);

// Loads plugins from the default folders (build folder, SPINEPARSE_PLUGIN_PATH) and any extra
// folders. Returns false (after printing why) when a plugin is refused.
bool load_default_plugins(Registry& registry, const std::vector<std::string>& extra_folders);

// The folder holding graphs/ and models/: PREFIX/share/spineparse for an installed binary, the
// source tree for one in the build tree.
std::string data_dir();

// After a run or merge: the Dice table of OUTPUT/metrics/summary.json and where the report is,
// when the graph made them.
void print_run_products(const std::string& output_dir);

// Volume files of a folder by case key (seg_Case3 / mask_case3 / Case3 -> "case3").
std::string case_key(const std::string& path);
std::map<std::string, std::string> volumes_by_case(const std::string& dir);

// s quoted for a POSIX shell (unchanged when it needs no quotes).
std::string shell_quote(const std::string& s);

void add_run(CLI::App& app);
void add_merge(CLI::App& app);        // cmd_cluster.cpp
void add_slurm(CLI::App& app);        // cmd_slurm.cpp
void add_slurm_train(CLI::App& app);  // cmd_slurm.cpp, only in builds with LibTorch
void add_validate(CLI::App& app);
void add_stages(CLI::App& app);
void add_synth(CLI::App& app);
void add_evaluate(CLI::App& app);
void add_measure(CLI::App& app);
void add_bench(CLI::App& app);
void add_model_info(CLI::App& app);
void add_import(CLI::App& app);  // only in builds with LibTorch
void add_train(CLI::App& app);   // only in builds with LibTorch

}  // namespace spineparse::tools::cli
