#include "to_raw.hpp"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "nn/resample.hpp"

namespace spineparse::plugins::fine {

void ToRawOptions::declare(ParamSet<ToRawOptions>& s) {
  s.add(&ToRawOptions::keep_probabilities, "keep_probabilities",
        "also keep the float32 [20,D,H,W] probabilities on the raw grid (large)");
  s.add(&ToRawOptions::label_probability, "label_probability",
        "also write label_probability, uint8 [D,H,W]: 255 x the chosen label's probability (for "
        "metrics.qc)");
}

StageDescription to_raw_description() {
  StageDescription d = describe<ToRawOptions>(
      "Fine softmax back to the raw grid (bilinear, align_corners) and argmax labels (spec 4.3)");
  d.reads = {{"fine_probs", false, "", "float32", "C,D,h,w"},
             {"image", false, "for the raw size", "float32", "D,H,W"}};
  d.writes = {{"labels", false, "0 background, 1-10 vertebrae, 11-19 discs", "uint8", "D,H,W"},
              {"probabilities", true, "when keep_probabilities", "float32", "C,D,H,W"},
              {"label_probability", true, "when label_probability: 255 x the top probability",
               "uint8", "D,H,W"}};
  d.consumes = {"fine_probs"};
  return d;
}

namespace {
// PyTorch's align_corners source index: src = dst * (in - 1) / (out - 1), in float.
struct Lerp {
  std::int64_t i0, i1;
  float l0, l1;
};
std::vector<Lerp> lerps(std::int64_t in, std::int64_t out) {
  std::vector<Lerp> v(out);
  const float scale = out > 1 ? static_cast<float>(in - 1) / static_cast<float>(out - 1) : 0.0f;
  for (std::int64_t o = 0; o < out; ++o) {
    const float src = scale * static_cast<float>(o);
    const std::int64_t i0 = static_cast<std::int64_t>(src);
    const float l1 = src - static_cast<float>(i0);
    v[o] = {i0, i0 + (i0 < in - 1 ? 1 : 0), 1.0f - l1, l1};
  }
  return v;
}

// One slice's output rows [r0, r1) of the crop: each class's source rows resized along W once
// (hz), then every output row a blend of two of them, compared with the best class so far. The
// same arithmetic as one bilinear step per voxel, in fewer operations, vectorised along W.
struct RowBlock {
  const float* P;  // fine_probs [C, D, h, w]
  std::int64_t C, D, h, w, W;
  const std::vector<Lerp>& ly;
  const std::vector<Lerp>& lx;
  void run(std::int64_t d, std::int64_t r0, std::int64_t r1, std::uint8_t* lab, std::uint8_t* top,
           float* full, std::int64_t full_row_stride) const {
    const std::int64_t s0 = ly[r0].i0, s1 = ly[r1 - 1].i1, rows = r1 - r0;
    std::vector<float> hz((s1 - s0 + 1) * W), best(rows * W, -1.0f);
    for (std::int64_t c = 0; c < C; ++c) {
      for (std::int64_t s = s0; s <= s1; ++s) {
        const float* src = P + ((c * D + d) * h + s) * w;
        float* dst = &hz[(s - s0) * W];
        for (std::int64_t x = 0; x < W; ++x)
          dst[x] = lx[x].l0 * src[lx[x].i0] + lx[x].l1 * src[lx[x].i1];
      }
      for (std::int64_t r = r0; r < r1; ++r) {
        const Lerp& y = ly[r];
        const float* a = &hz[(y.i0 - s0) * W];
        const float* b = &hz[(y.i1 - s0) * W];
        float* bst = &best[(r - r0) * W];
        std::uint8_t* l = lab + (r - r0) * W;
        float* f = full ? full + (c * D * full_row_stride) + (r - r0) * W : nullptr;
        const auto cls = static_cast<std::uint8_t>(c);
        for (std::int64_t x = 0; x < W; ++x) {
          const float v = y.l0 * a[x] + y.l1 * b[x];
          if (f) f[x] = v;
          const bool better = v > bst[x];  // strict: the first maximum wins, as torch.argmax
          bst[x] = better ? v : bst[x];
          l[x] = better ? cls : l[x];
        }
      }
    }
    if (top)
      for (std::int64_t k = 0; k < rows * W; ++k)
        top[k] = static_cast<std::uint8_t>(std::lround(std::clamp(best[k], 0.0f, 1.0f) * 255.0f));
  }
};
}  // namespace

CasePtr ToRaw::process(const CasePtr& in) {
  auto probs = in->get("fine_probs");
  auto image = in->get("image");
  const std::int64_t C = probs->dim(0), D = probs->dim(1), h = probs->dim(2), w = probs->dim(3);
  const std::int64_t H = image->dim(1), W = image->dim(2);
  if (image->dim(0) != D)
    throw std::runtime_error("fine_probs has " + std::to_string(D) + " slices, the image " +
                             std::to_string(image->dim(0)));
  const nn::RowCrop crop = nn::central_rows(H);
  const auto ly = lerps(h, crop.rows()), lx = lerps(w, W);
  const bool keep = options_.keep_probabilities;
  auto labels = NdArray::make<std::uint8_t>({D, H, W});
  std::shared_ptr<NdArray> top;  // zero outside the crop
  if (options_.label_probability) top = NdArray::make<std::uint8_t>({D, H, W});
  std::shared_ptr<NdArray> full;
  if (keep) full = NdArray::make<float>({C, D, H, W});  // zero outside the crop, as the original
  std::uint8_t* L = labels->data<std::uint8_t>();
  const RowBlock block{probs->data<float>(), C, D, h, w, W, ly, lx};
  constexpr std::int64_t kRows = 16;
  const std::int64_t blocks = (crop.rows() + kRows - 1) / kRows;
  tbb::parallel_for(std::int64_t{0}, D * blocks, [&](std::int64_t job) {
    const std::int64_t d = job / blocks, r0 = job % blocks * kRows;
    const std::int64_t r1 = std::min(crop.rows(), r0 + kRows);
    const std::int64_t row = d * H + crop.begin + r0;  // first output row in [D, H]
    block.run(d, r0, r1, L + row * W, top ? top->data<std::uint8_t>() + row * W : nullptr,
              keep ? full->data<float>() + row * W : nullptr, H * W);
  });
  auto out = in->derive();
  out->set("labels", labels);
  if (keep) out->set("probabilities", full);
  if (top) out->set("label_probability", top);
  return out;
}

}  // namespace spineparse::plugins::fine
