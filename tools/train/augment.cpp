#include "train/augment.hpp"

#include <torch/nn/functional.h>
#include <torch/torch.h>

#include <cmath>

namespace spineparse::tools::train {

using namespace spineparse::nn;  // the library floor training builds on
namespace F = torch::nn::functional;

namespace {
std::uint64_t mix(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
double uniform(std::uint64_t& s) { return (mix(s++) >> 11) * (1.0 / 9007199254740992.0); }

torch::Tensor smooth(const torch::Tensor& noise, double sigma) {
  const int r = static_cast<int>(4 * sigma + 0.5);
  auto x = torch::arange(-r, r + 1, torch::kFloat32);
  auto k = torch::exp(-0.5 * x * x / (sigma * sigma));
  k = k / k.sum();
  auto t = noise.unsqueeze(0).unsqueeze(0);  // [1,1,H,W]
  t = F::conv2d(t, k.view({1, 1, -1, 1}), F::Conv2dFuncOptions().padding({r, 0}));
  t = F::conv2d(t, k.view({1, 1, 1, -1}), F::Conv2dFuncOptions().padding({0, r}));
  return t[0][0];
}

torch::Tensor sample(const torch::Tensor& x, const torch::Tensor& grid, bool nearest) {
  const auto D = x.size(0);
  auto opts = F::GridSampleFuncOptions().padding_mode(torch::kReflection).align_corners(true);
  if (nearest)
    opts.mode(torch::kNearest);
  else
    opts.mode(torch::kBilinear);
  return F::grid_sample(x, grid.expand({D, grid.size(1), grid.size(2), 2}), opts);
}
}  // namespace

AugmentedSample augment(const AugmentedSample& in, const AugmentConfig& cfg, std::uint64_t seed) {
  if (!cfg.enabled) return in;
  torch::NoGradGuard ng;
  std::uint64_t s = mix(seed);
  const int64_t H = in.image.size(2), W = in.image.size(3);
  const int angle =
      cfg.rotate_deg > 0
          ? static_cast<int>(std::floor(uniform(s) * 2 * cfg.rotate_deg)) - cfg.rotate_deg
          : 0;
  const bool elastic = uniform(s) < cfg.elastic_p;
  const bool contrast = uniform(s) < cfg.contrast_p;
  const double factor = 0.5 + uniform(s);
  // The field of view along W: kept whole, or its part [0, keep) or [1 - keep, 1] (an end cut off).
  double keep = 1, keep_from = 0;
  if (cfg.fov_crop_p > 0 && uniform(s) < cfg.fov_crop_p) {
    keep = 1 - cfg.fov_crop_max * uniform(s);
    keep_from = uniform(s) < 0.5 ? 0 : 1 - keep;
  }
  // Output pixel (h, w) samples the rotated (and displaced) source position, in pixels.
  auto hh = torch::arange(H, torch::kFloat32).view({H, 1}).expand({H, W});
  auto ww = torch::arange(W, torch::kFloat32).view({1, W}).expand({H, W});
  const double ch = (H - 1) / 2.0, cw = (W - 1) / 2.0, a = angle * M_PI / 180.0;
  auto sh = ch + (hh - ch) * std::cos(a) - (ww - cw) * std::sin(a);
  auto sw = cw + (hh - ch) * std::sin(a) + (ww - cw) * std::cos(a);
  if (keep < 1) sw = sw * keep + keep_from * (W - 1);
  if (elastic) {
    torch::manual_seed(static_cast<std::uint64_t>(mix(s++) >> 1));
    sh = sh + smooth(torch::randn({H, W}), cfg.elastic_sigma) * cfg.elastic_alpha;
    sw = sw + smooth(torch::randn({H, W}), cfg.elastic_sigma) * cfg.elastic_alpha;
  }
  // grid_sample wants (x = w, y = h) in [-1, 1] (align_corners: -1 and 1 are the edge pixel
  // centres).
  auto grid =
      torch::stack(
          {sw / std::max<int64_t>(1, W - 1) * 2 - 1, sh / std::max<int64_t>(1, H - 1) * 2 - 1}, -1)
          .unsqueeze(0);
  AugmentedSample out;
  out.image = sample(in.image, grid, false);
  if (contrast) out.image = torch::clamp(out.image * factor, -10.0, 10.0);
  if (in.extra.defined()) {
    auto g = grid;
    const int64_t h = in.extra.size(2), w = in.extra.size(3);
    if (h != H || w != W) {  // the same normalised field, sampled on the extra's own grid
      g = F::interpolate(grid.permute({0, 3, 1, 2}), F::InterpolateFuncOptions()
                                                         .size(std::vector<int64_t>{h, w})
                                                         .mode(torch::kBilinear)
                                                         .align_corners(true))
              .permute({0, 2, 3, 1});
    }
    out.extra = sample(in.extra, g, false);
  }
  out.labels = sample(in.labels.unsqueeze(1).to(torch::kFloat32), grid, true)
                   .squeeze(1)
                   .round()
                   .to(torch::kInt64);
  return out;
}

}  // namespace spineparse::tools::train
