// Bridges between the runtime's host arrays and LibTorch, and device selection. Included only by
// the network plugins' sources, never by widely included headers.
#pragma once

#include <torch/types.h>

#include <map>
#include <memory>
#include <string>

#include "spineparse/ndarray.hpp"
#include "spineparse/stage.hpp"

namespace torch::jit {
struct Module;
}
namespace torch::nn {
class Module;
}

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

// Float16 autocast on CUDA for the lifetime of the object (nothing elsewhere).
class CudaAutocast {
 public:
  explicit CudaAutocast(bool on) : on_(on) {
    if (on_) set_cuda_autocast(true);
  }
  ~CudaAutocast() {
    if (on_) set_cuda_autocast(false);
  }

 private:
  bool on_;
};

// What a network stage's open() does: thread count, device, precision, and its weights file,
// either a TorchScript module (model == "torchscript") or a safetensors state dict that the stage
// loads into its own network. Reads the params "weights", "model", "device" and "amp".
struct NetworkSetup {
  torch::Device device{torch::kCPU};
  bool amp = false;
  std::string weights;
  std::shared_ptr<torch::jit::Module> script;
  std::map<std::string, torch::Tensor> state;
  // random_weights=true (benchmarking only): no file is read; the stage keeps the full-size
  // network's seeded default initialisation. The segmentation is meaningless, the timing is not.
  bool random = false;
};
// The parameter that asks for it, for the network stages' descriptions.
ParamSpec random_weights_param();
NetworkSetup setup_network(const Params& params, const StageContext& ctx);

// Puts a loaded network in inference form on the setup's device (bfloat16 on CPU with amp).
void place(torch::nn::Module& net, const NetworkSetup& setup);

// Sets LibTorch's intra-op threads (it starts with 1 here, see STYLE.md). LibTorch applies the
// count to each thread the first time that thread runs a parallel operator (OpenMP keeps it per
// thread), so call it before the threads that run networks start their first one.
void set_torch_threads(int threads);

}  // namespace spineparse::nn
