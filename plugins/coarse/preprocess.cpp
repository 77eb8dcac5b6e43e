#include "preprocess.hpp"

#include <algorithm>
#include <stdexcept>

#include "resample.hpp"

namespace spineparse::coarse {

StageDescription preprocess_description() {
  StageDescription d;
  d.kind = "coarse.preprocess";
  d.summary = "GCSN input: crop the central rows, anti-aliased cubic resize to 128x256, pad slices to 18 (spec 2.1)";
  d.params = {
      {"height", ParamType::kInt, ParamValue(std::int64_t{128}), false, "rows of the network input", {}, 16.0, std::nullopt},
      {"width", ParamType::kInt, ParamValue(std::int64_t{256}), false, "columns of the network input", {}, 16.0, std::nullopt},
      {"min_slices", ParamType::kInt, ParamValue(std::int64_t{18}), false, "pad the slice axis to this many", {}, 1.0, std::nullopt},
  };
  d.reads = {{"image", false, "normalised float32 [D,H,W]"}, {"norm", true, "offset and scale"}};
  d.writes = {{"coarse_input", false, "float32 [1,1,Dp,128,256]"}, {"coarse_pad", false, "int64 [2]"}};
  return d;
}

std::pair<double, double> norm_of(const Case& c) {
  if (!c.has("norm")) return {0.0, 1.0};
  const double* n = c.get("norm")->data<double>();
  return {n[0], n[1]};
}

CoarseInput make_coarse_input(const NdArray& image, double offset, double scale, std::int64_t height,
                              std::int64_t width, std::int64_t min_slices) {
  const std::int64_t D = image.dim(0), H = image.dim(1), W = image.dim(2);
  if (H < 4) throw std::runtime_error("image has " + std::to_string(H) + " rows; at least 4 are needed to crop the central half");
  const double pad_value = (0.0 - offset) / scale;
  auto resized = nn::resize_slices(image.data<float>(), D, H, W, nn::central_rows(H), height, width, pad_value);
  const std::int64_t Dp = std::max(D, min_slices);
  const std::int64_t delta = Dp - D, before = (delta + 1) / 2;  // ceil(delta / 2)
  CoarseInput out;
  out.pad_before = before;
  out.input = NdArray::make<float>({1, 1, Dp, height, width});
  float* x = out.input->data<float>();
  std::fill(x, x + out.input->numel(), static_cast<float>(pad_value));
  std::copy(resized.begin(), resized.end(), x + before * height * width);
  return out;
}

CasePtr Preprocess::process(const CasePtr& in) {
  auto [offset, scale] = norm_of(*in);
  auto ci = make_coarse_input(*in->get("image"), offset, scale, params_.get_int("height"), params_.get_int("width"),
                              params_.get_int("min_slices"));
  auto pad = NdArray::make<std::int64_t>({2});
  pad->data<std::int64_t>()[0] = ci.pad_before;
  pad->data<std::int64_t>()[1] = in->get("image")->dim(0);
  auto out = in->derive();
  out->set("coarse_input", ci.input);
  out->set("coarse_pad", pad);
  return out;
}

}  // namespace spineparse::coarse
