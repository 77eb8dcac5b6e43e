// Batches the slices of several cases into shared forward passes (dynamic batching, as inference
// servers do): each call queues its case's slices; whichever call finds no pass running becomes
// the leader, takes up to batch_size queued slices in arrival order (from any cases), runs one
// pass, and writes each case's rows into that case's result. The other calls wait and lead in
// turn, so one pass runs at a time (one device stream) and no thread is added.
//
// The fine stage uses it on CUDA, where a 12-slice case fills a 16-slice batch only partly; on
// the CPU, cases run side by side instead (see network::NetworkCall). Included by the fine plugin
// only.
#pragma once

#include <torch/types.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>

namespace spineparse::plugins::fine {

class SliceBatcher {
 public:
  // image [n,1,h,w] and unary [n,C,h',w'] (host, contiguous) -> [n,C,h,w] on any device.
  using Forward =
      std::function<torch::Tensor(const torch::Tensor& image, const torch::Tensor& unary)>;

  // wait_ms: how long a leader waits for a full batch before running a partial one.
  SliceBatcher(std::int64_t batch_size, double wait_ms)
      : batch_size_(batch_size), wait_ms_(wait_ms) {}

  struct Result {
    torch::Tensor out;      // [C, D, h, w] on the forward's device
    int passes = 0;         // forward passes that held slices of this case
    int shared_passes = 0;  // of those, passes that also held slices of other cases
  };
  // Every slice of one case: image [D,1,h,w], unary [D,C,h',w'] (host). Blocks until all of
  // them ran; rethrows the error of a pass that held any of them.
  Result run(const torch::Tensor& image, const torch::Tensor& unary, const Forward& forward);

 private:
  struct Request;
  void lead(std::unique_lock<std::mutex>& lk, const Forward& forward);
  std::int64_t queued_slices() const;

  std::int64_t batch_size_;
  double wait_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Request*> queue_;  // requests with slices not yet taken
  bool leading_ = false;
};

}  // namespace spineparse::plugins::fine
