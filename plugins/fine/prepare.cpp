#include "prepare.hpp"

#include <algorithm>
#include <stdexcept>

#include "resample.hpp"

namespace spineparse::fine {

StageDescription prepare_description() {
  StageDescription d;
  d.kind = "fine.prepare";
  d.summary = "Fine MR input: crop the central rows, anti-aliased cubic resize to 256x512 (spec 4.1)";
  d.params = {
      {"height", ParamType::kInt, ParamValue(std::int64_t{256}), false, "rows of the fine grid", {}, 16.0, std::nullopt},
      {"width", ParamType::kInt, ParamValue(std::int64_t{512}), false, "columns of the fine grid", {}, 16.0, std::nullopt},
  };
  d.reads = {{"image"}, {"norm", true}};
  d.writes = {{"fine_mr", false, "float32 [D,256,512]"}};
  return d;
}

std::shared_ptr<NdArray> make_fine_mr(const NdArray& image, double offset, double scale, std::int64_t height,
                                      std::int64_t width) {
  const std::int64_t D = image.dim(0), H = image.dim(1), W = image.dim(2);
  if (H < 4) throw std::runtime_error("image has " + std::to_string(H) + " rows; at least 4 are needed");
  auto r = nn::resize_slices(image.data<float>(), D, H, W, nn::central_rows(H), height, width, (0.0 - offset) / scale);
  auto out = NdArray::make<float>({D, height, width});
  std::copy(r.begin(), r.end(), out->data<float>());
  return out;
}

CasePtr Prepare::process(const CasePtr& in) {
  double offset = 0, scale = 1;
  if (in->has("norm")) {
    offset = in->get("norm")->data<double>()[0];
    scale = in->get("norm")->data<double>()[1];
  }
  auto out = in->derive();
  out->set("fine_mr", make_fine_mr(*in->get("image"), offset, scale, params_.get_int("height"), params_.get_int("width")));
  return out;
}

}  // namespace spineparse::fine
