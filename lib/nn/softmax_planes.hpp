// The softmax over a network's channels, from channels-last logits straight into planar
// probabilities: one pass where a layout copy, a softmax and a scatter each went over memory.
// Built for the CPU found at run time (spineparse/cpu_clones.hpp), the same bytes on each.
#pragma once
#include <cstdint>

namespace spineparse::nn {

// For each of `pixels` pixels whose `c` channels are contiguous in `x` (x[p c + k]):
// probs[k plane + p] = exp(x[p c + k] - m) / sum over j of exp(x[p c + j] - m), m the pixel's
// largest logit, the sum in channel order. exp is a polynomial within 2 units in the last place
// of float32's (LibTorch's softmax differs from it by as little). No aliasing between x and probs.
void softmax_to_planes(const float* x, std::int64_t pixels, std::int64_t c, float* probs,
                       std::int64_t plane);

}  // namespace spineparse::nn
