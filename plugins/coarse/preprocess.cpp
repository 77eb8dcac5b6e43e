#include "preprocess.hpp"

#include <algorithm>
#include <stdexcept>

#include "nn/resample.hpp"
#include "plugins/io/normalisation_field.hpp"

namespace spineparse::plugins::coarse {

StageDescription preprocess_description() {
  StageDescription d = describe<PreprocessOptions>(
      "GCSN input: crop the central rows, anti-aliased cubic resize to 128x256, pad slices to 18 "
      "(spec 2.1)");
  d.reads = {{"image", false, "normalised", "float32", "D,H,W"},
             io::normalisation_read("the padding value: a raw zero, normalised")};
  d.writes = {{"coarse_input", false, "Dp = max(D, min_slices); h, w = height, width", "float32",
               "1,1,Dp,h,w"},
              {"coarse_pad", false, "slices padded before, slices of the case", "int64", "2"}};
  return d;
}

CasePtr Preprocess::process(const CasePtr& in) {
  const auto [offset, scale] = io::normalisation_of(*in);
  auto ci = nn::make_coarse_input(*in->get("image"), offset, scale, options_.height, options_.width,
                                  options_.min_slices);
  auto pad = NdArray::make<std::int64_t>({2});
  pad->data<std::int64_t>()[0] = ci.pad_before;
  pad->data<std::int64_t>()[1] = in->get("image")->dim(0);
  auto out = in->derive();
  out->set("coarse_input", ci.input);
  out->set("coarse_pad", pad);
  return out;
}

}  // namespace spineparse::plugins::coarse
