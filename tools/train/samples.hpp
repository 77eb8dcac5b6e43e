// Training samples built by the inference stages' own functions, so that training sees what
// inference sees: the cases of a fold read with their masks, the coarse and fine network inputs,
// label maps on the network grids, and the validation Dice.
#pragma once

#include <torch/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "io/training_range.hpp"
#include "spineparse/case.hpp"
#include "spineparse/stage.hpp"
#include "train/training.hpp"

namespace spineparse::tools::train {

struct Volume {
  std::string id;
  NdArrayPtr image;                 // raw float32 [D,H,W]
  NdArrayPtr mask;                  // uint8 [D,H,W]
  io::VolumeProperties properties;  // spacing, slices, field of view (io/training_range.hpp)
};

// The cases numbered `numbers` (1-based into `seeds`); each must have a mask of its image's size.
// Each case's axis codes go to `orientation_of` (by id) when given.
std::vector<Volume> load_cases(const std::string& data_dir, const std::vector<int>& numbers,
                               const std::vector<CaseSeed>& seeds,
                               std::map<std::string, std::string>* orientation_of = nullptr);

// The axis codes all training cases share (recorded in the weights' metadata, so that inference
// reorients other scans to them). Throws naming the cases that differ from the majority.
std::string common_orientation(const std::map<std::string, std::string>& orientation_of);

// Nearest-neighbour resize of the central rows, skimage order 0 (pixel centres): int64 [D,oh,ow].
torch::Tensor resize_labels(const NdArray& mask, std::int64_t oh, std::int64_t ow);

// Coarse: x [1, Dp, h, w], y [Dp, h, w] (padded slices labelled 0).
std::pair<torch::Tensor, torch::Tensor> coarse_sample(const Volume& v, const TrainConfig& c);
// Fine MR: [D, h, w].
torch::Tensor fine_mr(const Volume& v, const TrainConfig& c);

// Mean Dice over foreground classes present in either map (spec 6 DiceCoefficient, skip 0).
double dice_fg(const torch::Tensor& pred, const torch::Tensor& truth);

}  // namespace spineparse::tools::train
