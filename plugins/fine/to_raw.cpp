#include "to_raw.hpp"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "nn/resample.hpp"

namespace spineparse::fine {

StageDescription to_raw_description() {
  StageDescription d;
  d.kind = "fine.to_raw";
  d.summary =
      "Fine softmax back to the raw grid (bilinear, align_corners) and argmax labels (spec 4.3)";
  d.params = {{"keep_probabilities", ParamType::kBool, ParamValue(false), false,
               "also keep the float32 [20,D,H,W] probabilities on the raw grid (large)"}};
  d.reads = {{"fine_probs", false, "", "float32", "C,D,h,w"},
             {"image", false, "for the raw size", "float32", "D,H,W"}};
  d.writes = {{"labels", false, "0 background, 1-10 vertebrae, 11-19 discs", "uint8", "D,H,W"},
              {"probabilities", true, "when keep_probabilities", "float32", "C,D,H,W"}};
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
  const bool keep = params_.get_bool("keep_probabilities");
  auto labels = NdArray::make<std::uint8_t>({D, H, W});
  std::shared_ptr<NdArray> full;
  if (keep) full = NdArray::make<float>({C, D, H, W});  // zero outside the crop, as the original
  const float* P = probs->data<float>();
  std::uint8_t* L = labels->data<std::uint8_t>();
  tbb::parallel_for(std::int64_t{0}, D * crop.rows(), [&](std::int64_t job) {
    const std::int64_t d = job / crop.rows(), r = job % crop.rows();
    const Lerp& y = ly[r];
    std::vector<float> best(W, -1.0f);
    std::uint8_t* lab = L + (d * H + crop.begin + r) * W;
    for (std::int64_t c = 0; c < C; ++c) {
      const float* row0 = P + ((c * D + d) * h + y.i0) * w;
      const float* row1 = P + ((c * D + d) * h + y.i1) * w;
      float* dst = keep ? full->data<float>() + ((c * D + d) * H + crop.begin + r) * W : nullptr;
      for (std::int64_t x = 0; x < W; ++x) {
        const Lerp& e = lx[x];
        const float v = y.l0 * (e.l0 * row0[e.i0] + e.l1 * row0[e.i1]) +
                        y.l1 * (e.l0 * row1[e.i0] + e.l1 * row1[e.i1]);
        if (dst) dst[x] = v;
        if (v > best[x]) {  // strict: the first maximum wins, as torch.argmax
          best[x] = v;
          lab[x] = static_cast<std::uint8_t>(c);
        }
      }
    }
  });
  auto out = in->derive();
  out->set("labels", labels);
  if (keep) out->set("probabilities", full);
  return out;
}

}  // namespace spineparse::fine
