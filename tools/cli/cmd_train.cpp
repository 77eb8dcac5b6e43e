// spineparse train coarse|fine: the original's training recipe in C++ (plugins/nn/training.hpp).
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "commands.hpp"
#include "io/case_attributes.hpp"
#include "io/dataset.hpp"
#include "io/volume_io.hpp"
#include "metrics/scores.hpp"
#include "nn/torch_util.hpp"
#include "plugins/coarse/preprocess_options.hpp"
#include "plugins/fine/prepare_options.hpp"
#include "plugins/io/read_dataset_options.hpp"
#include "plugins/network/network_options.hpp"
#include "spineparse/executor.hpp"
#include "spineparse/files.hpp"
#include "spineparse/graph.hpp"
#include "spineparse/graph_draft.hpp"
#include "spineparse/registry.hpp"
#include "train/folds.hpp"
#include "train/training.hpp"

namespace spineparse::tools::cli {
namespace fs = std::filesystem;

namespace {
struct TrainArgs {
  std::string data, fold = "1", config, output = "training", coarse_weights, init;
  bool resume = false;
  int threads = 0;
};

std::vector<int> folds_of(const std::string& s) {
  if (s == "all") return {0, 1, 2, 3, 4};
  int k = 0;
  try {
    k = std::stoi(s);
  } catch (...) {
  }
  if (k < 1 || k > 5) throw std::runtime_error("--fold is 1..5 or all, got '" + s + "'");
  return {k - 1};
}

// graphs/spineparsenet.json for one fold: its test cases, its models, the grids they were trained
// on. Nodes are found by their stage kind.
// set_all<O>(g, &O::member, value): sets the member on every node of O's stage kind (at least one).
template <class O, class M, class C, class V>
void set_all(GraphDraft& g, M C::*member, const V& value) {
  const auto ids = g.nodes_of_stage(O::kKind);
  if (ids.empty()) throw std::runtime_error(g.path() + " has no " + O::kKind + " node");
  for (const auto& id : ids) g.set<O>(id, member, value);
}

GraphDraft fold_graph(const GraphDraft& base, const std::vector<std::string>& cases,
                      const std::string& dir, const train::TrainConfig& cfg) {
  using plugins::coarse::PreprocessOptions;
  using plugins::fine::PrepareOptions;
  using plugins::io::ReadDatasetOptions;
  using plugins::network::GcsnOptions;
  using plugins::network::ResUNetOptions;
  GraphDraft g = base;
  set_all<ReadDatasetOptions>(g, &ReadDatasetOptions::cases, cases);
  set_all<GcsnOptions>(g, &GcsnOptions::weights, dir + "/coarse/gcsn/best.safetensors");
  set_all<ResUNetOptions>(g, &ResUNetOptions::weights, dir + "/fine/best.safetensors");
  set_all<PreprocessOptions>(g, &PreprocessOptions::height, std::int64_t{cfg.coarse_height});
  set_all<PreprocessOptions>(g, &PreprocessOptions::width, std::int64_t{cfg.coarse_cols});
  set_all<PrepareOptions>(g, &PrepareOptions::height, std::int64_t{cfg.fine_height});
  set_all<PrepareOptions>(g, &PrepareOptions::width, std::int64_t{cfg.fine_cols});
  return g;
}

// Cross-validated evaluation after `train fine --fold all`: each fold's models segment that fold's
// test cases through graphs/spineparsenet.json, and every case is scored once, from the label
// file the run wrote for it (its "output:labels").
void cross_validate(const TrainArgs& a, const train::TrainConfig& cfg) {
  Registry registry;
  load_default_plugins(registry, {});
  const auto seeds = io::list_dataset(a.data, "auto");
  const GraphDraft base = GraphDraft::from_file(data_dir() + "/graphs/spineparsenet.json");
  std::vector<metrics::CaseScores> all;
  for (int fold = 0; fold < 5; ++fold) {
    const std::string dir = a.output + "/fold" + std::to_string(fold + 1);
    std::map<std::string, std::string> masks;
    std::vector<std::string> ids;
    for (int c : train::make_fold(static_cast<int>(seeds.size()), fold).test) {
      const CaseSeed& s = seeds[c - 1];
      ids.push_back(s.id);
      if (s.attrs.count(io::kMaskPathAttr)) masks[s.id] = s.attrs.at(io::kMaskPathAttr);
    }
    GraphLoad g = load_graph(fold_graph(base, ids, dir, cfg), registry);
    if (!g.ok()) throw std::runtime_error(g.issues[0].to_string());
    RunOptions o;
    o.input_dir = a.data;
    o.output_dir = a.output + "/cv/fold" + std::to_string(fold + 1);
    o.progress = "plain";
    for (const CaseOutcome& c : run_graph(*g.graph, registry, o).cases) {
      const auto seg = c.attrs.find(io::output_attr("labels"));
      if (c.status != "ok" || seg == c.attrs.end() || !masks.count(c.id)) continue;
      auto P = io::read_labels(seg->second, 19), G = io::read_labels(masks[c.id], 19);
      all.push_back(
          {c.id, metrics::score_case(*P.data, *G.data, metrics::spacing_dhw(G.geometry)), -1});
    }
  }
  auto j = nlohmann::json::parse(metrics::write_reports(all, a.output + "/cv/metrics"));
  std::printf(
      "cross-validated Dice over %zu cases: vertebrae %.4f, discs %.4f, all %.4f (%s/cv/metrics)\n",
      all.size(), j["dice"]["vertebrae"]["mean"].get<double>(),
      j["dice"]["discs"]["mean"].get<double>(), j["dice"]["all"]["mean"].get<double>(),
      a.output.c_str());
}

void run(const std::string& what, const TrainArgs& a) {
  run_command([&] {
    train::TrainConfig cfg;
    if (!a.config.empty()) cfg = train::TrainConfig::from_json_file(a.config);
    if (!a.init.empty()) cfg.fine_init = a.init;
    nn::set_torch_threads(a.threads > 0 ? a.threads : available_cores());
    auto progress = [](const std::string& line) {
      std::fprintf(stderr, "[train] %s\n", line.c_str());
      std::fflush(stderr);
    };
    for (int fold : folds_of(a.fold)) {
      train::TrainResult r;
      if (what == "coarse") {
        r = train::train_coarse(a.data, fold, cfg, a.output, a.resume, progress);
      } else {
        std::string cw = a.coarse_weights;
        if (cw.empty())
          cw = a.output + "/fold" + std::to_string(fold + 1) + "/coarse/gcsn/best.safetensors";
        r = train::train_fine(a.data, fold, cfg, a.output, cw, a.resume, progress);
      }
      std::printf("fold %d %s: best validation Dice %.4f at epoch %d -> %s\n", fold + 1,
                  what.c_str(), r.best_dice, r.best_epoch, r.best_weights.c_str());
    }
    if (what == "fine" && a.fold == "all") cross_validate(a, cfg);
    return 0;
  });
}
}  // namespace

void add_train(CLI::App& app) {
  auto* train = app.add_subcommand(
      "train", "Train the networks (the original's recipe, its training bugs fixed)");
  train->require_subcommand(1);
  for (const char* what : {"coarse", "fine"}) {
    auto a = std::make_shared<TrainArgs>();
    auto* sub = train->add_subcommand(what, std::string(what) == std::string("coarse")
                                                ? "DeepLabv3+, then the GCSN from its best weights"
                                                : "ResUNet2D on slices with the coarse logits");
    sub->add_option("--data", a->data, "dataset folder with masks (original layout or flat)")
        ->required()
        ->check(CLI::ExistingDirectory);
    sub->add_option("--fold", a->fold, "1..5 or all")->capture_default_str();
    sub->add_option("--config", a->config, "training configuration (JSON; see docs/training.md)")
        ->check(CLI::ExistingFile);
    sub->add_option("--output,-o", a->output, "folder for fold{K}/... checkpoints and logs")
        ->capture_default_str();
    sub->add_flag("--resume", a->resume, "continue an interrupted run from its last epoch");
    sub->add_option("--threads", a->threads,
                    "LibTorch intra-op threads (default: all cores; augmentation runs on one more)")
        ->check(CLI::Range(0, 1024));
    if (std::string(what) == "fine") {
      sub->add_option(
          "--coarse-weights", a->coarse_weights,
          "GCSN for in-sample logits (default: OUTPUT/fold{K}/coarse/gcsn/best.safetensors)");
      sub->add_option("--init", a->init,
                      "start from these ResUNet2D weights (overrides the config's fine_init)")
          ->check(CLI::ExistingFile);
    }
    sub->callback([what, a] { run(what, *a); });
  }
}

}  // namespace spineparse::tools::cli
