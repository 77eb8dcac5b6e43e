// Training SpineParseNet in C++ (spec 6): the original's recipe with its training bugs fixed.
//
//   coarse: DeepLabv3+ (no graph module) from scratch, then the GCSN started from its best
//           weights (shared layers), loss CE(logits) + ds_weight x CE(trilinear(Z)), Adam with
//           L2 weight decay, MultiStepLR(gamma 0.2, milestones [E//3, E//1.5]) per epoch, best
//           weights by validation Dice over all validation cases (the original scored a random
//           half of them, spec 10.16).
//   fine:   coarse logits for every case (in-sample as the original, or out-of-fold: each case's
//           logits from the fold whose test set holds it, which needs all folds' coarse models),
//           then ResUNet2D on slices, CE, same optimiser; validation Dice skips the background
//           (the original counted it, spec 10.17).
// Batches are prepared and augmented on a producer thread while the optimiser runs (a bounded
// queue keeps memory flat). Every epoch writes last.safetensors, optimizer.pt and state.json
// atomically, best.safetensors when the validation Dice improves, and a line of training.csv;
// `resume` continues from the last finished epoch exactly (the augmentation of an iteration is a
// function of the seed, the epoch and the iteration).
#pragma once

#include <torch/types.h>

#include <functional>
#include <string>
#include <vector>

#include "train/augment.hpp"

namespace spineparse::tools::train {

struct TrainConfig {
  // Coarse network and grid.
  double coarse_width = 1.0;
  int coarse_height = 128, coarse_cols = 256, coarse_slices = 18;
  int deeplab_epochs = 100, gcsn_epochs = 50, coarse_batch = 2;
  double coarse_lr = 1e-3, ds_weight = 0.3;
  // Fine network and grid.
  int fine_fmaps = 32, fine_height = 256, fine_cols = 512;
  int fine_epochs = 100, fine_batch = 8;
  double fine_lr = 1e-4;
  std::string fine_logits = "in-sample";  // or "out-of-fold"
  std::string fine_init;                  // optional ResUNet2D weights to start from (fine-tuning)
  // Shared.
  // "ce": cross-entropy, the original. "ce+dice": plus a soft Dice term (1 - mean soft Dice over
  // the 19 structures, batch-wise, as nnU-Net), which keeps thin, rare structures such as the
  // discs from being ignored by a small network on a short schedule.
  std::string loss = "ce";
  double weight_decay = 1e-4;
  int iterations_per_epoch = 0;  // 0: training items / batch (the original)
  // >0: stop this invocation after so many epochs (continue with resume).
  int stop_after_epochs = 0;
  std::uint64_t seed = 0;
  AugmentConfig augment;

  static TrainConfig from_json_file(const std::string& path);  // unknown keys are errors
  std::string to_json() const;
};

// The training loss for logits [N,C,...] and labels [N,...] (int64): cross-entropy, plus the
// soft Dice term when cfg.loss is "ce+dice".
torch::Tensor segmentation_loss(const torch::Tensor& logits, const torch::Tensor& labels,
                                const TrainConfig& cfg);

struct EpochLog {
  int epoch = 0, iterations = 0;
  double loss = 0, lr = 0, val_dice = 0, seconds = 0;
};

struct TrainResult {
  std::string best_weights;
  double best_dice = 0;
  int best_epoch = -1;
  std::vector<EpochLog> log;
};

using ProgressFn = std::function<void(const std::string& line)>;

// data_dir: a dataset folder with masks (original layout or flat); fold: 0-based; out_dir gets
// fold{K}/coarse/{deeplab,gcsn}/. Returns the GCSN's result.
TrainResult train_coarse(const std::string& data_dir, int fold, const TrainConfig& cfg,
                         const std::string& out_dir, bool resume, const ProgressFn& progress);
// coarse_weights: the GCSN for in-sample logits (ignored for out-of-fold, which reads
// out_dir/fold{k}/coarse/gcsn/best.safetensors of every fold). Writes out_dir/fold{K}/fine/.
TrainResult train_fine(const std::string& data_dir, int fold, const TrainConfig& cfg,
                       const std::string& out_dir, const std::string& coarse_weights, bool resume,
                       const ProgressFn& progress);

}  // namespace spineparse::tools::train
