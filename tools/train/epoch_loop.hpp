// The epoch loop both networks train with: Adam with L2 weight decay, MultiStepLR (gamma 0.2,
// milestones [E//3, E//1.5]) per epoch, batches made and augmented on a producer thread while the
// optimiser runs (a bounded queue keeps memory flat), validation after every epoch. Every epoch
// writes last.safetensors, optimizer.pt, state.json, training.csv and curve.svg atomically, and
// best.safetensors when the validation Dice improves; `resume` continues from the last finished
// epoch exactly (the batches of an iteration are a function of the seed, epoch and iteration).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "train/training.hpp"

namespace torch::nn {
class Module;
}

namespace spineparse::tools::train {

struct Batch {
  torch::Tensor a, b, y;
};

// One network's training: where its files go, the model, the schedule, and how to make a batch
// of items (indices into the training set), its loss, and the validation score (higher is better).
struct Task {
  std::string name, dir;
  torch::nn::Module* model = nullptr;
  int n_items = 0, epochs = 1, batch = 1;
  double lr = 1e-3;
  std::function<Batch(const std::vector<int>& items, std::uint64_t seed)> make_batch;
  std::function<torch::Tensor(const Batch&)> loss;
  std::function<double()> validate;
  std::map<std::string, std::string> metadata;  // more entries for the weight files' metadata
};

TrainResult run_task(Task& t, const TrainConfig& cfg, bool resume, const ProgressFn& progress);

}  // namespace spineparse::tools::train
