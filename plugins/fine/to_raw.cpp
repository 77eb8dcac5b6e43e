#include "to_raw.hpp"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "nn/resample.hpp"
#include "spineparse/cpu_clones.hpp"

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
// PyTorch's align_corners source index: src = dst * (in - 1) / (out - 1), in float. Stored as
// arrays (i0, i1, l0, l1 per output index) so that the loops below vectorise.
struct Lerps {
  std::vector<std::int32_t> i0, i1;
  std::vector<float> l0, l1;
};
Lerps lerps(std::int64_t in, std::int64_t out) {
  Lerps v;
  const float scale = out > 1 ? static_cast<float>(in - 1) / static_cast<float>(out - 1) : 0.0f;
  for (std::int64_t o = 0; o < out; ++o) {
    const float src = scale * static_cast<float>(o);
    const auto i0 = static_cast<std::int32_t>(src);
    const float l1 = src - static_cast<float>(i0);
    v.i0.push_back(i0);
    v.i1.push_back(i0 + (i0 < in - 1 ? 1 : 0));
    v.l0.push_back(1.0f - l1);
    v.l1.push_back(l1);
  }
  return v;
}

// dst[x] = l0[x] src[i0[x]] + l1[x] src[i1[x]]: one source row resized along W.
SPINEPARSE_CPU_CLONES
void resize_row(const float* __restrict src, const std::int32_t* __restrict i0,
                const std::int32_t* __restrict i1, const float* __restrict l0,
                const float* __restrict l1, float* __restrict dst, std::int64_t W) {
  for (std::int64_t x = 0; x < W; ++x) dst[x] = l0[x] * src[i0[x]] + l1[x] * src[i1[x]];
}

// One output row of class `cls`: v = l0 a + l1 b, kept where it beats the best so far (strictly:
// the first maximum wins, as torch.argmax), and written to `full` when not null.
SPINEPARSE_CPU_CLONES
void blend_row(const float* __restrict a, const float* __restrict b, float l0, float l1,
               float* __restrict best, std::uint8_t* __restrict lab, std::uint8_t cls,
               float* __restrict full, std::int64_t W) {
  for (std::int64_t x = 0; x < W; ++x) {
    const float v = l0 * a[x] + l1 * b[x];
    const bool better = v > best[x];
    best[x] = better ? v : best[x];
    lab[x] = better ? cls : lab[x];
  }
  if (full)
    for (std::int64_t x = 0; x < W; ++x) full[x] = l0 * a[x] + l1 * b[x];
}

constexpr std::uint8_t kMixed = 255;  // no class wins every neighbour clearly

// Per source pixel of n consecutive ones of a slice (P at the first, classes `cs` floats apart):
// the class with the largest probability when it beats every other by more than kMargin x the
// largest |probability| among them all (at least 1), else kMixed (ties; an infinity anywhere
// among them). A NaN is never the winner or the runner-up, as it never wins a voxel below.
SPINEPARSE_CPU_CLONES
void clear_winners(const float* __restrict P, std::int64_t C, std::int64_t cs, std::int64_t n,
                   std::uint8_t* __restrict cls, float* __restrict top, float* __restrict second,
                   float* __restrict low) {
  constexpr float kMargin = 1e-5f;
  std::fill(top, top + n, -INFINITY);
  std::fill(second, second + n, -INFINITY);
  std::fill(low, low + n, INFINITY);
  std::fill(cls, cls + n, std::uint8_t{0});
  for (std::int64_t c = 0; c < C; ++c) {
    const float* p = P + c * cs;
    for (std::int64_t j = 0; j < n; ++j) {
      const bool above = p[j] > top[j];
      second[j] = above ? top[j] : (p[j] > second[j] ? p[j] : second[j]);
      top[j] = above ? p[j] : top[j];
      low[j] = p[j] < low[j] ? p[j] : low[j];
      cls[j] = above ? static_cast<std::uint8_t>(c) : cls[j];
    }
  }
  constexpr int kLanes = 16;  // the largest |value|, in lanes (a max reduction stays scalar)
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, 1.0f);
  for (std::int64_t j = 0; j < n; ++j) {
    float& m = lanes[j % kLanes];
    m = top[j] > m ? top[j] : m;
    m = -low[j] > m ? -low[j] : m;
  }
  const float margin = kMargin * *std::max_element(lanes, lanes + kLanes);  // infinite: none clear
  for (std::int64_t j = 0; j < n; ++j) cls[j] = top[j] - second[j] > margin ? cls[j] : kMixed;
}

// One output row of the shortcut: where the winners along W of its two source rows (a, b) agree
// and are clear, that class's value (resize_row then blend_row's arithmetic, the source rows at
// offsets ra and rb of a slice whose classes lie `cs` floats apart) and the class, kept where
// above `best`. Branch-free, so that each build vectorises it (gathers).
SPINEPARSE_CPU_CLONES
void sure_row(const float* __restrict P, std::int64_t cs, const std::uint8_t* __restrict a,
              const std::uint8_t* __restrict b, std::int64_t ra, std::int64_t rb,
              const std::int32_t* __restrict i0, const std::int32_t* __restrict i1,
              const float* __restrict l0, const float* __restrict l1, float ly0, float ly1,
              float* __restrict best, std::uint8_t* __restrict lab, std::int64_t W) {
  for (std::int64_t x = 0; x < W; ++x) {
    const bool sure = a[x] == b[x] && a[x] != kMixed;
    const float* p = P + (sure ? a[x] : 0) * cs;
    const float ha = l0[x] * p[ra + i0[x]] + l1[x] * p[ra + i1[x]];
    const float hb = l0[x] * p[rb + i0[x]] + l1[x] * p[rb + i1[x]];
    const float v = ly0 * ha + ly1 * hb;
    const bool take = sure && v > best[x];
    best[x] = take ? v : best[x];
    lab[x] = take ? a[x] : lab[x];
  }
}

// top[k] = lround(255 x best[k] clamped to [0, 1]): for x in [0, 255], x + 0.5 is exact in
// double, and truncating it rounds half away from zero as lround does; a loop that vectorises.
SPINEPARSE_CPU_CLONES
void top_levels(const float* __restrict best, std::int64_t n, std::uint8_t* __restrict top) {
  for (std::int64_t k = 0; k < n; ++k) {
    float x = best[k] < 0.0f ? 0.0f : best[k];
    x = 1.0f < x ? 1.0f : x;
    top[k] = static_cast<std::uint8_t>(static_cast<int>(static_cast<double>(x * 255.0f) + 0.5));
  }
}

// One slice's output rows [r0, r1) of the crop: each class's source rows resized along W once
// (hz), then every output row a blend of two of them, compared with the best class so far. The
// same arithmetic as one bilinear step per voxel, in fewer operations, vectorised along W.
//
// Without the full probabilities, a voxel whose four source neighbours have the same clear winner
// (clear_winners: by far more than the steps' rounding could close) takes that class: a bilinear
// step is a convex combination, so that class wins the voxel too, and its value alone is
// computed, in the same arithmetic. The other voxels take every class, as above.
struct RowBlock {
  const float* P;  // fine_probs [C, D, h, w]
  std::int64_t C, D, h, w, W;
  const Lerps& ly;
  const Lerps& lx;

  void run(std::int64_t d, std::int64_t r0, std::int64_t r1, std::uint8_t* lab, std::uint8_t* top,
           float* full, std::int64_t full_row_stride) const {
    const std::int64_t rows = r1 - r0;
    std::vector<float> best(rows * W, -1.0f);
    std::vector<std::int64_t> mixed;
    if (full || !sure_voxels(d, r0, r1, lab, best.data(), mixed))
      all_classes(d, r0, r1, lab, best.data(), full, full_row_stride);
    for (const std::int64_t k : mixed) one_voxel(d, r0 + k / W, k % W, lab[k], best[k]);
    if (top) top_levels(best.data(), rows * W, top);
  }

  void all_classes(std::int64_t d, std::int64_t r0, std::int64_t r1, std::uint8_t* lab,
                   float* best, float* full, std::int64_t full_row_stride) const {
    const std::int64_t s0 = ly.i0[r0], s1 = ly.i1[r1 - 1];
    std::vector<float> hz((s1 - s0 + 1) * W);
    for (std::int64_t c = 0; c < C; ++c) {
      for (std::int64_t s = s0; s <= s1; ++s)
        resize_row(P + ((c * D + d) * h + s) * w, lx.i0.data(), lx.i1.data(), lx.l0.data(),
                   lx.l1.data(), &hz[(s - s0) * W], W);
      for (std::int64_t r = r0; r < r1; ++r) {
        float* f = full ? full + (c * D * full_row_stride) + (r - r0) * W : nullptr;
        blend_row(&hz[(ly.i0[r] - s0) * W], &hz[(ly.i1[r] - s0) * W], ly.l0[r], ly.l1[r],
                  &best[(r - r0) * W], lab + (r - r0) * W, static_cast<std::uint8_t>(c), f, W);
      }
    }
  }

  // Class c's value at output (r, x), as resize_row and blend_row compute it.
  float value(std::int64_t c, std::int64_t d, std::int64_t r, std::int64_t x) const {
    const float* p = P + (c * D + d) * h * w;
    const float* a = p + ly.i0[r] * w;
    const float* b = p + ly.i1[r] * w;
    const std::int32_t j0 = lx.i0[x], j1 = lx.i1[x];
    const float ha = lx.l0[x] * a[j0] + lx.l1[x] * a[j1];
    const float hb = lx.l0[x] * b[j0] + lx.l1[x] * b[j1];
    return ly.l0[r] * ha + ly.l1[r] * hb;
  }

  void one_voxel(std::int64_t d, std::int64_t r, std::int64_t x, std::uint8_t& lab,
                 float& best) const {
    for (std::int64_t c = 0; c < C; ++c) {
      const float v = value(c, d, r, x);
      if (v > best) best = v, lab = static_cast<std::uint8_t>(c);
    }
  }

  // The shortcut: labels and values of the voxels whose neighbours agree; the others' offsets in
  // `mixed`. False (nothing written) when more than a quarter of the voxels are mixed: then the
  // class-by-class rows are cheaper.
  bool sure_voxels(std::int64_t d, std::int64_t r0, std::int64_t r1, std::uint8_t* lab,
                   float* best, std::vector<std::int64_t>& mixed) const {
    const std::int64_t s0 = ly.i0[r0], s1 = ly.i1[r1 - 1], n = (s1 - s0 + 1) * w;
    std::vector<std::uint8_t> cls(n), along((s1 - s0 + 1) * W);
    std::vector<float> t(n), u(n), v(n);
    clear_winners(P + (d * h + s0) * w, C, D * h * w, n, cls.data(), t.data(), u.data(), v.data());
    for (std::int64_t s = 0; s <= s1 - s0; ++s)  // the winner of both neighbours along W
      for (std::int64_t x = 0; x < W; ++x) {
        const std::uint8_t a = cls[s * w + lx.i0[x]], b = cls[s * w + lx.i1[x]];
        along[s * W + x] = a == b ? a : kMixed;
      }
    const std::int64_t rows = r1 - r0;
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::uint8_t* a = &along[(ly.i0[r] - s0) * W];
      const std::uint8_t* b = &along[(ly.i1[r] - s0) * W];
      const std::int64_t k0 = (r - r0) * W;
      for (std::int64_t x = 0; x < W; ++x)
        if (a[x] != b[x] || a[x] == kMixed) mixed.push_back(k0 + x);
      if (static_cast<std::int64_t>(mixed.size()) * 4 > rows * W) {
        mixed.clear();
        return false;
      }
    }
    for (std::int64_t r = r0; r < r1; ++r)
      sure_row(P + d * h * w, D * h * w, &along[(ly.i0[r] - s0) * W],
               &along[(ly.i1[r] - s0) * W], ly.i0[r] * w, ly.i1[r] * w, lx.i0.data(),
               lx.i1.data(), lx.l0.data(), lx.l1.data(), ly.l0[r], ly.l1[r],
               best + (r - r0) * W, lab + (r - r0) * W, W);
    return true;
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
