// Bridges between the runtime's host arrays and LibTorch, and device selection. Included only by
// the network plugins' sources, never by widely included headers.
#pragma once

#include <torch/types.h>

#include <string>

#include "spineparse/ndarray.hpp"

namespace spineparse::nn {

// A float32 CPU tensor viewing the array (no copy; the array must outlive the tensor).
torch::Tensor view_of(const NdArray& a);
// A host copy of a tensor (any device) as an NdArray of the same dtype (float32, uint8, int64).
std::shared_ptr<NdArray> to_ndarray(const torch::Tensor& t);

// "cpu", "cuda", "cuda:N" or "auto" (CUDA when LibTorch has it and a GPU is present).
// Throws with the parameter value when CUDA is asked for but unavailable.
torch::Device parse_device(const std::string& spec);

// Turns CUDA autocast (float16 mixed precision) on or off, across LibTorch 1.13 and 2.x APIs.
void set_cuda_autocast(bool on);

// Sets LibTorch's intra-op threads once per process (it starts with 1 here; spec of STYLE).
void set_torch_threads(int threads);

}  // namespace spineparse::nn
