// Reads checkpoints written by the original trainer (`torch.save` of a dict holding
// model_state_dict, optimizer_state_dict, epoch, ...) or of a bare state dict, without Python.
// LibTorch 1.13's torch::pickle_load fails on them (the state dict's OrderedDict carries
// `_metadata` set by BUILD), so this reads the zip archive with libzip and interprets the few
// pickle opcodes torch.save uses; anything else is refused with the opcode or class named.
#pragma once

#include <torch/types.h>

#include <map>
#include <string>

namespace spineparse::nn {

struct Checkpoint {
  std::map<std::string, torch::Tensor> state_dict;  // model_state_dict (or the bare state dict)
  std::map<std::string, std::string> info;          // scalar entries: epoch, best_eval_score, ...
};

Checkpoint read_checkpoint(const std::string& path);

}  // namespace spineparse::nn
