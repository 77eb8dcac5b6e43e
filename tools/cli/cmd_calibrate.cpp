// spineparse calibrate: records in a ResUNet2D weights file the int8 activation ranges that
// fine.resunet's precision=int8 quantizes with, and how far the int8 labels agree with float32's.
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "commands.hpp"
#include "io/case_attributes.hpp"
#include "io/volume_io.hpp"
#include "io/weights_metadata.hpp"
#include "nn/int8_calibration.hpp"
#include "spineparse/executor.hpp"
#include "spineparse/files.hpp"
#include "spineparse/graph.hpp"
#include "spineparse/registry.hpp"

namespace spineparse::tools::cli {
namespace fs = std::filesystem;

namespace {

struct CalibrateArgs {
  std::string weights, data, check, output;
  GraphArgs graph;
};

// One run of the graph over `input` into `output` with the fine node set as `fine` says.
RunReport run_with(const CalibrateArgs& a, const std::string& input, const std::string& output,
                   const std::vector<std::string>& fine) {
  GraphArgs g = a.graph;
  g.sets.insert(g.sets.end(), fine.begin(), fine.end());
  Registry registry;
  const auto graph = load_graph_args(g, registry);
  if (!graph) throw std::runtime_error("the graph " + g.graph + " did not load (above)");
  RunOptions o;
  o.input_dir = input;
  o.output_dir = output;
  o.progress = "none";
  std::fprintf(stderr, "calibrate: running %s over %s (%s)\n", g.graph.c_str(), input.c_str(),
               fine.back().c_str());
  RunReport r = run_graph(*graph, registry, o);
  if (r.ok == 0) throw std::runtime_error("no case of " + input + " ran (see " + output + ")");
  return r;
}

// Voxels whose labels are equal in both runs, over the voxels of the cases ok in both.
struct Agreement {
  double equal = 0, voxels = 0;
  int cases = 0;
};
Agreement labels_agreement(const RunReport& a, const RunReport& b) {
  std::map<std::string, std::string> other;
  for (const auto& c : b.cases)
    if (c.status == "ok" && c.attrs.count(io::output_attr("labels")))
      other[c.id] = c.attrs.at(io::output_attr("labels"));
  Agreement g;
  for (const auto& c : a.cases) {
    const auto it = other.find(c.id);
    if (c.status != "ok" || it == other.end() || !c.attrs.count(io::output_attr("labels")))
      continue;
    const auto x = io::read_labels(c.attrs.at(io::output_attr("labels")), 255);
    const auto y = io::read_labels(it->second, 255);
    if (x.data->shape() != y.data->shape()) continue;
    const auto* p = x.data->data<std::uint8_t>();
    const auto* q = y.data->data<std::uint8_t>();
    for (std::int64_t i = 0; i < x.data->numel(); ++i) g.equal += p[i] == q[i];
    g.voxels += static_cast<double>(x.data->numel());
    ++g.cases;
  }
  return g;
}

int calibrate(const CalibrateArgs& a) {
  const fs::path out = a.output.empty() ? fs::path(a.weights).parent_path() /
                                              (fs::path(a.weights).stem().string() + "-calibration")
                                        : fs::path(a.output);
  const std::string W = "fine.weights=" + a.weights;
  const RunReport fp32 = run_with(a, a.data, (out / "fp32").string(),
                                  {W, "fine.precision=fp32", "fine.calibrate=true"});
  const auto ranges_file = out / "fp32" / "calibration" / "int8_ranges.json";
  nn::Int8Calibration cal =
      nn::Int8Calibration::from_json(read_file(ranges_file.string()), ranges_file.string());
  // The int8 run reads the ranges from a copy of the weights, so that the file itself is only
  // rewritten once the agreement is known.
  const std::string trial = (out / "int8.safetensors").string();
  fs::copy_file(a.weights, trial, fs::copy_options::overwrite_existing);
  io::set_safetensors_metadata(trial, {{nn::kInt8CalibrationKey, cal.to_json()}});
  const std::string checked = a.check.empty() ? a.data : a.check;
  const RunReport reference = a.check.empty() ? fp32
                                              : run_with(a, a.check, (out / "fp32-check").string(),
                                                         {W, "fine.precision=fp32"});
  const RunReport int8 = run_with(a, checked, (out / "int8").string(),
                                  {"fine.weights=" + trial, "fine.precision=int8"});
  const Agreement g = labels_agreement(reference, int8);
  if (g.cases == 0) throw std::runtime_error("no case ran at both precisions: nothing to compare");
  cal.agreement = g.equal / g.voxels;
  cal.checked_cases = g.cases;
  cal.checked_on = a.check.empty() ? "the calibration cases" : a.check;
  io::set_safetensors_metadata(a.weights, {{nn::kInt8CalibrationKey, cal.to_json()}});
  fs::remove(trial);
  std::printf(
      "%s: int8 ranges from %d cases; int8 labels agree with fp32 on %.3f %% of voxels "
      "(%d cases of %s)\n",
      a.weights.c_str(), cal.cases, 100 * cal.agreement, g.cases, cal.checked_on.c_str());
  if (cal.agreement < 0.999)
    std::printf("below 99.9 %%: precision=int8 changes these weights' labels; keep fp32 or bf16\n");
  std::printf("runs kept in %s\n", out.c_str());
  return 0;
}

}  // namespace

void add_calibrate(CLI::App& app) {
  auto a = std::make_shared<CalibrateArgs>();
  a->graph.graph = data_dir() + "/graphs/spineparsenet.json";
  auto* sub = app.add_subcommand(
      "calibrate",
      "Record in a ResUNet2D weights file the int8 activation ranges of its cases (for "
      "fine.precision=int8) and how far int8 labels agree with fp32's");
  sub->add_option("weights", a->weights, "the fine network's .safetensors (rewritten atomically)")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--data", a->data, "cases like those the weights will segment (a dataset folder)")
      ->required()
      ->check(CLI::ExistingDirectory);
  sub->add_option("--check", a->check,
                  "held-out cases to measure the agreement on (default: the --data cases)")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--graph", a->graph.graph, "the graph whose fine node runs the weights")
      ->capture_default_str();
  sub->add_option("--output,-o", a->output,
                  "where the fp32 and int8 runs go (default: WEIGHTS' folder, STEM-calibration)");
  sub->add_option("--set", a->graph.sets, "override a parameter: NODE.PARAM=VALUE (repeatable)");
  sub->add_option("--plugin-dir", a->graph.plugin_dirs, "extra folder to load plugins from");
  sub->callback([a] { run_command([&] { return calibrate(*a); }); });
}

}  // namespace spineparse::tools::cli
