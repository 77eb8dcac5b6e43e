#include "train/samples.hpp"

#include <torch/torch.h>

#include <cmath>

#include "io/case_attributes.hpp"
#include "io/orientation.hpp"
#include "io/volume_io.hpp"
#include "nn/resample.hpp"

namespace spineparse::tools::train {

using namespace spineparse::nn;  // the library floor training builds on
namespace {

constexpr float kMean = 466.0f, kStd = 379.0f;

// The image normalised as io.normalise does ((x - 466) / 379 in float32).
NdArray normalised(const NdArray& raw) {
  NdArray n(DType::kFloat32, raw.shape());
  const float* x = raw.data<float>();
  float* y = n.data<float>();
  for (std::int64_t i = 0; i < raw.numel(); ++i) y[i] = (x[i] - kMean) / kStd;
  return n;
}

torch::Tensor as_tensor(const NdArray& a) {
  return torch::from_blob(const_cast<void*>(a.raw()), a.shape(), torch::kFloat32).clone();
}

}  // namespace

std::vector<Volume> load_cases(const std::string& data_dir, const std::vector<int>& numbers,
                               const std::vector<CaseSeed>& seeds,
                               std::map<std::string, std::string>* orientation_of) {
  std::vector<Volume> out;
  for (int n : numbers) {
    const CaseSeed& s = seeds.at(n - 1);
    auto it = s.attrs.find(io::kMaskPathAttr);
    if (it == s.attrs.end())
      throw std::runtime_error("case " + s.id + " in " + data_dir +
                               " has no mask; training needs one per case");
    Volume v;
    v.id = s.id;
    auto image = io::read_image(s.attrs.at(io::kImagePathAttr));
    v.image = image.data;
    if (orientation_of) (*orientation_of)[s.id] = io::axis_codes(image.geometry);
    v.properties = io::volume_properties(
        image.geometry, {image.data->dim(1), image.data->dim(2), image.data->dim(0)});
    v.mask = io::read_labels(it->second, 19).data;
    if (v.mask->shape() != v.image->shape())
      throw std::runtime_error("case " + s.id + ": mask and image differ in size");
    out.push_back(v);
  }
  return out;
}

std::string common_orientation(const std::map<std::string, std::string>& orientation_of) {
  std::map<std::string, int> count;
  for (const auto& [id, codes] : orientation_of) ++count[codes];
  if (count.empty()) return "";
  std::string most = count.begin()->first;
  for (const auto& [codes, n] : count)
    if (n > count[most]) most = codes;
  if (count.size() == 1) return most;
  std::string odd;
  for (const auto& [id, codes] : orientation_of)
    if (codes != most) odd += (odd.empty() ? "" : ", ") + id + " " + codes;
  throw std::runtime_error("the training cases are stored in different orientations (most " + most +
                           "; " + odd +
                           "): store them alike, e.g. as the majority, so that the model learns "
                           "one orientation");
}

torch::Tensor resize_labels(const NdArray& m, std::int64_t oh, std::int64_t ow) {
  const std::int64_t D = m.dim(0), H = m.dim(1), W = m.dim(2);
  const RowCrop crop = central_rows(H);
  auto out = torch::zeros({D, oh, ow}, torch::kInt64);
  auto* y = out.data_ptr<std::int64_t>();
  const auto* x = m.data<std::uint8_t>();
  for (std::int64_t d = 0; d < D; ++d)
    for (std::int64_t r = 0; r < oh; ++r) {
      const std::int64_t sr = std::min(
          crop.rows() - 1, static_cast<std::int64_t>(std::floor((r + 0.5) * crop.rows() / oh)));
      for (std::int64_t c = 0; c < ow; ++c) {
        const std::int64_t sc =
            std::min(W - 1, static_cast<std::int64_t>(std::floor((c + 0.5) * W / ow)));
        y[(d * oh + r) * ow + c] = x[(d * H + crop.begin + sr) * W + sc];
      }
    }
  return out;
}

std::pair<torch::Tensor, torch::Tensor> coarse_sample(const Volume& v, const TrainConfig& c) {
  const auto ci = make_coarse_input(normalised(*v.image), kMean, kStd, c.coarse_height,
                                    c.coarse_cols, c.coarse_slices);
  auto x = as_tensor(*ci.input)[0];
  auto y = resize_labels(*v.mask, c.coarse_height, c.coarse_cols);
  auto yp = torch::zeros({x.size(1), y.size(1), y.size(2)}, torch::kInt64);
  yp.narrow(0, ci.pad_before, y.size(0)).copy_(y);
  return {x, yp};
}

torch::Tensor fine_mr(const Volume& v, const TrainConfig& c) {
  return as_tensor(*make_fine_mr(normalised(*v.image), kMean, kStd, c.fine_height, c.fine_cols));
}

double dice_fg(const torch::Tensor& pred, const torch::Tensor& truth) {
  double sum = 0;
  int n = 0;
  for (int c = 1; c < 20; ++c) {
    auto p = pred == c, g = truth == c;
    const double ps = p.sum().item<double>(), gs = g.sum().item<double>();
    if (ps == 0 && gs == 0) continue;
    sum += 2 * (p & g).sum().item<double>() / (ps + gs + 1e-7);
    ++n;
  }
  return n ? sum / n : 1.0;
}

}  // namespace spineparse::tools::train
