// spineparse train coarse|fine: the original's training recipe in C++ (plugins/nn/training.hpp).
#include <cstdio>
#include <filesystem>

#include "commands.hpp"
#include "training.hpp"

namespace spineparse::cli {
namespace fs = std::filesystem;

namespace {
struct TrainArgs {
  std::string data, fold = "1", config, output = "training", coarse_weights;
  bool resume = false;
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

void run(const std::string& what, const TrainArgs& a) {
  try {
    nn::TrainConfig cfg;
    if (!a.config.empty()) cfg = nn::TrainConfig::from_json_file(a.config);
    auto progress = [](const std::string& line) {
      std::fprintf(stderr, "[train] %s\n", line.c_str());
      std::fflush(stderr);
    };
    for (int fold : folds_of(a.fold)) {
      nn::TrainResult r;
      if (what == "coarse") {
        r = nn::train_coarse(a.data, fold, cfg, a.output, a.resume, progress);
      } else {
        std::string cw = a.coarse_weights;
        if (cw.empty()) cw = a.output + "/fold" + std::to_string(fold + 1) + "/coarse/gcsn/best.safetensors";
        r = nn::train_fine(a.data, fold, cfg, a.output, cw, a.resume, progress);
      }
      std::printf("fold %d %s: best validation Dice %.4f at epoch %d -> %s\n", fold + 1, what.c_str(), r.best_dice,
                  r.best_epoch, r.best_weights.c_str());
    }
    set_exit_code(0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    set_exit_code(2);
  }
}
}  // namespace

void add_train(CLI::App& app) {
  auto* train = app.add_subcommand("train", "Train the networks (the original's recipe, its training bugs fixed)");
  train->require_subcommand(1);
  for (const char* what : {"coarse", "fine"}) {
    auto a = std::make_shared<TrainArgs>();
    auto* sub = train->add_subcommand(what, std::string(what) == std::string("coarse")
                                                ? "DeepLabv3+, then the GCSN from its best weights"
                                                : "ResUNet2D on slices with the coarse logits");
    sub->add_option("--data", a->data, "dataset folder with masks (original layout or flat)")->required()->check(CLI::ExistingDirectory);
    sub->add_option("--fold", a->fold, "1..5 or all")->capture_default_str();
    sub->add_option("--config", a->config, "training configuration (JSON; see README)")->check(CLI::ExistingFile);
    sub->add_option("--output,-o", a->output, "folder for fold{K}/... checkpoints and logs")->capture_default_str();
    sub->add_flag("--resume", a->resume, "continue an interrupted run from its last epoch");
    if (std::string(what) == "fine") {
      sub->add_option("--coarse-weights", a->coarse_weights,
                      "GCSN for in-sample logits (default: OUTPUT/fold{K}/coarse/gcsn/best.safetensors)");
    }
    sub->callback([what, a] { run(what, *a); });
  }
}

}  // namespace spineparse::cli
