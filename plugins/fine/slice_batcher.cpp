#include "slice_batcher.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>

namespace spineparse::plugins::fine {

struct SliceBatcher::Request {
  torch::Tensor image, unary;
  std::int64_t slices = 0, taken = 0, done = 0;
  Result result;
  std::exception_ptr error;
};

std::int64_t SliceBatcher::queued_slices() const {
  std::int64_t n = 0;
  for (const Request* r : queue_) n += r->slices - r->taken;
  return n;
}

SliceBatcher::Result SliceBatcher::run(const torch::Tensor& image, const torch::Tensor& unary,
                                       const Forward& forward) {
  Request r;
  r.image = image;
  r.unary = unary;
  r.slices = image.size(0);
  std::unique_lock<std::mutex> lk(mu_);
  if (r.slices == 0) return r.result;
  queue_.push_back(&r);
  cv_.notify_all();  // a leader waiting for a fuller batch
  while (r.done < r.slices) {
    if (!leading_) {
      lead(lk, forward);
    } else {
      cv_.wait(lk, [&] { return r.done == r.slices || !leading_; });
    }
  }
  if (r.error) std::rethrow_exception(r.error);
  return std::move(r.result);
}

// Called with the lock held and no pass running; returns with the lock held.
void SliceBatcher::lead(std::unique_lock<std::mutex>& lk, const Forward& forward) {
  leading_ = true;
  if (wait_ms_ > 0) {
    cv_.wait_for(lk, std::chrono::duration<double, std::milli>(wait_ms_),
                 [&] { return queued_slices() >= batch_size_; });
  }
  struct Piece {
    Request* r;
    std::int64_t first, n;
  };
  std::vector<Piece> pieces;
  std::int64_t taken = 0;
  while (!queue_.empty() && taken < batch_size_) {
    Request* q = queue_.front();
    const std::int64_t n = std::min(batch_size_ - taken, q->slices - q->taken);
    pieces.push_back({q, q->taken, n});
    q->taken += n;
    taken += n;
    if (q->taken == q->slices) queue_.pop_front();
  }
  lk.unlock();
  std::exception_ptr error;
  try {
    std::vector<torch::Tensor> images, unaries;
    for (const auto& p : pieces) {
      images.push_back(p.r->image.narrow(0, p.first, p.n));
      unaries.push_back(p.r->unary.narrow(0, p.first, p.n));
    }
    auto image = pieces.size() == 1 ? images[0].contiguous() : torch::cat(images);
    auto unary = pieces.size() == 1 ? unaries[0].contiguous() : torch::cat(unaries);
    auto out = forward(image, unary);  // [taken, C, h, w]
    std::int64_t at = 0;
    for (const auto& p : pieces) {
      // Only the leader writes results, and one leads at a time.
      auto& res = p.r->result.out;
      if (!res.defined())
        res = torch::empty({out.size(1), p.r->slices, out.size(2), out.size(3)}, out.options());
      res.narrow(1, p.first, p.n).copy_(out.narrow(0, at, p.n).permute({1, 0, 2, 3}));
      at += p.n;
    }
  } catch (...) {
    error = std::current_exception();
  }
  lk.lock();
  for (const auto& p : pieces) {
    p.r->done += p.n;
    ++p.r->result.passes;
    if (pieces.size() > 1) ++p.r->result.shared_passes;
    if (!error || p.r->error) continue;
    // A failed case: its slices not yet taken are dropped, and its call returns the error.
    p.r->error = error;
    p.r->done += p.r->slices - p.r->taken;
    p.r->taken = p.r->slices;
    queue_.erase(std::remove(queue_.begin(), queue_.end(), p.r), queue_.end());
  }
  leading_ = false;
  cv_.notify_all();
}

}  // namespace spineparse::plugins::fine
