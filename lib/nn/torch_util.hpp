// Bridges between the runtime's host arrays and LibTorch, and device selection. Included only by
// the network plugins' sources, never by widely included headers.
#pragma once

#include <c10/core/Stream.h>
#include <torch/types.h>

#include <memory>
#include <string>

#include "spineparse/ndarray.hpp"

namespace spineparse::nn {

// A float32 CPU tensor viewing the array (no copy; the array must outlive the tensor).
torch::Tensor view_of(const NdArray& a);
// A host copy of a tensor (any device, any strides) as an NdArray of the same dtype (float32,
// uint8, int64, float64; other dtypes as float32), made in one copy.
std::shared_ptr<NdArray> to_ndarray(const torch::Tensor& t);
// The softmax over the channels of logits [n,C,h,w] (CPU, any float dtype and layout) written into
// slices first .. first + n - 1 of probs [C,D,h,w] (float32, contiguous). Channels-last float32
// logits, what the fused networks write, go in one pass (nn/softmax_planes.hpp) on the intra-op
// threads; others through LibTorch's softmax and a copy.
void softmax_into_planes(const torch::Tensor& logits, const torch::Tensor& probs,
                         std::int64_t first);

// "cpu", "cuda", "cuda:N" or "auto" (CUDA when LibTorch has it and a GPU is present), always
// with an index on CUDA: "cuda" and "auto" are "cuda:0" (a device of index -1 would make stream
// guards index their per-device tables at -1, and the executor see "cuda" and "cuda:0" as two
// GPUs). Throws with the parameter value when CUDA is asked for but unavailable.
torch::Device parse_device(const std::string& spec);
// The same rule on names, given what the machine has: "cpu" or "cuda:N". Throws likewise.
std::string canonical_device(const std::string& spec, bool cuda_available, int gpus);

// Turns CUDA autocast on (in float16 or bfloat16) or off, across LibTorch 1.13 and 2.x APIs;
// turning it off also clears autocast's cache of cast weights.
void set_cuda_autocast(bool on, torch::ScalarType dtype = torch::kHalf);

// TensorFloat-32 for CUDA's float32 convolutions and matrix products (cuDNN and cuBLAS allow it
// by default, which would make fp32 on the GPU not float32). One switch per process: the first
// call sets it, a later call asking the other way throws naming both. Readable without CUDA.
void set_tf32(bool allow);
bool tf32_allowed();

// Whether a CUDA error leaves the device unusable for the rest of the process (an illegal
// address, a device-side assert, a launch failure: "sticky" errors), from the error's message.
// Out-of-memory and invalid arguments are not: they fail one call only.
bool is_sticky_device_error(const std::string& message);

// CUDA autocast in `dtype` for the lifetime of the object when `on` (nothing otherwise).
class CudaAutocast {
 public:
  CudaAutocast(bool on, torch::ScalarType dtype) : on_(on) {
    if (on_) set_cuda_autocast(true, dtype);
  }
  ~CudaAutocast() {
    if (on_) set_cuda_autocast(false);
  }
  CudaAutocast(const CudaAutocast&) = delete;
  CudaAutocast& operator=(const CudaAutocast&) = delete;

 private:
  bool on_;
};

// A network stage's own CUDA stream, so that its kernels and copies overlap those of the other
// network stage and the host work of other cases. Device-generic (c10's stream API), so it builds
// against CPU-only LibTorch too; on CPU it does nothing.
class StageStream {
 public:
  StageStream() = default;
  explicit StageStream(torch::Device device);
  bool active() const { return active_; }
  // Makes the stream current on this thread for the guard's lifetime (no-op on CPU).
  class Use {
   public:
    explicit Use(const StageStream& s);
    ~Use();
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

   private:
    std::shared_ptr<void> guard_;
  };
  // Waits for everything queued on the stream (results copied to the host are then valid).
  void synchronize() const;
  const c10::Stream& stream() const { return stream_; }

 private:
  bool active_ = false;
  c10::Stream stream_{c10::Stream::DEFAULT, c10::Device(c10::kCPU)};  // kept whole: its device
                                                                      // index and id together
};

// Host -> device in two steps, so that a stage holds its device only for the second: a
// page-locked copy of `host` for a CUDA device (host work; `host` itself for the CPU), then an
// asynchronous copy of that to the device on the current stream.
torch::Tensor pinned_copy(const torch::Tensor& host, torch::Device for_device);
torch::Tensor to_device_async(const torch::Tensor& staged, torch::Device device);

// Gives LibTorch's cached page-locked host blocks back to the system (the staging buffers of a
// CUDA stage, kept for reuse, rounded up to powers of two): at a CUDA stage's close(). Looked up
// in the loaded libtorch_cuda at run time, so CPU builds need no CUDA headers; does nothing
// without it. Returns whether it found the function.
bool release_pinned_cache();
// The path of a loaded shared library whose file name starts with `prefix` ("" if none).
std::string loaded_library(const std::string& prefix);

// Sets LibTorch's intra-op threads (it starts with 1 here, see STYLE.md) for the calling thread
// and for threads that have not run a parallel operator yet: OpenMP keeps the count per thread,
// so concurrent calls on different threads may use different counts.
void set_torch_threads(int threads);

}  // namespace spineparse::nn
