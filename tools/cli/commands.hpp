// Subcommands of the spineparse CLI; each lives in its own cmd_*.cpp.
#pragma once

#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace spineparse {
class Registry;
struct GraphSpec;
}  // namespace spineparse

namespace spineparse::tools::cli {

void add_commands(CLI::App& app);
int exit_code();
void set_exit_code(int code);
// Runs a command's body and sets the exit code it returns; an exception escaping the body prints
// "error: WHAT" and sets 2 (the CLI's code for "nothing was done").
void run_command(const std::function<int()>& body);

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

// The graph arguments of run and validate (cmd_run.cpp): the graph, --set, --plugin-dir.
struct GraphArgs {
  std::string graph;
  std::vector<std::string> sets;
  std::vector<std::string> plugin_dirs;
  std::string device;  // run --device: every network node's device
};
void add_graph_args(CLI::App* sub, GraphArgs& a);
// Loads plugins and the graph; prints every problem (and validation's notes). Returns null on
// failure.
std::unique_ptr<GraphSpec> load_graph_args(const GraphArgs& a, Registry& registry);

// SIGINT and SIGTERM while it lives (cmd_run.cpp): the first sets g_stop to the signal and
// prints `message`, a second exits at once with 128 + the signal.
extern std::atomic<int> g_stop;
class StopSignals {
 public:
  explicit StopSignals(const char* message);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {
  }, old_term_{};
};

void add_run(CLI::App& app);
void add_merge(CLI::App& app);
void add_slurm(CLI::App& app);        // cmd_slurm.cpp
void add_slurm_train(CLI::App& app);  // cmd_slurm.cpp, only in builds with LibTorch
void add_validate(CLI::App& app);
void add_stages(CLI::App& app);
void add_synth(CLI::App& app);
void add_evaluate(CLI::App& app);
void add_measure(CLI::App& app);
void add_bench(CLI::App& app);
void add_model_info(CLI::App& app);
void add_serve(CLI::App& app);   // cmd_serve.cpp
void add_calibrate(CLI::App& app);  // cmd_calibrate.cpp, only in builds with LibTorch
void add_import(CLI::App& app);     // only in builds with LibTorch
void add_train(CLI::App& app);   // only in builds with LibTorch

}  // namespace spineparse::tools::cli
