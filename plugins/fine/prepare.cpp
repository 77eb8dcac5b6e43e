#include "prepare.hpp"

#include <algorithm>
#include <stdexcept>

#include "nn/resample.hpp"
#include "plugins/io/normalisation_field.hpp"

namespace spineparse::plugins::fine {

StageDescription prepare_description() {
  StageDescription d = describe<PrepareOptions>(
      "Fine MR input: crop the central rows, anti-aliased cubic resize to 256x512 (spec 4.1)");
  d.reads = {{"image", false, "normalised", "float32", "D,H,W"},
             io::normalisation_read("the padding value: a raw zero, normalised")};
  d.writes = {{"fine_mr", false, "h, w = height, width", "float32", "D,h,w"}};
  return d;
}

CasePtr Prepare::process(const CasePtr& in) {
  const auto [offset, scale] = io::normalisation_of(*in);
  auto out = in->derive();
  out->set("fine_mr",
           nn::make_fine_mr(*in->get("image"), offset, scale, options_.height, options_.width));
  return out;
}

}  // namespace spineparse::plugins::fine
