#include "prepare.hpp"

#include <algorithm>
#include <stdexcept>

#include "nn/resample.hpp"

namespace spineparse::fine {

StageDescription prepare_description() {
  StageDescription d;
  d.kind = "fine.prepare";
  d.summary =
      "Fine MR input: crop the central rows, anti-aliased cubic resize to 256x512 (spec 4.1)";
  d.params = {
      {"height",
       ParamType::kInt,
       ParamValue(std::int64_t{256}),
       false,
       "rows of the fine grid",
       {},
       16.0,
       std::nullopt},
      {"width",
       ParamType::kInt,
       ParamValue(std::int64_t{512}),
       false,
       "columns of the fine grid",
       {},
       16.0,
       std::nullopt},
  };
  d.reads = {{"image", false, "normalised", "float32", "D,H,W"},
             {"norm", true, "offset and scale", "float64", "2"}};
  d.writes = {{"fine_mr", false, "h, w = height, width", "float32", "D,h,w"}};
  return d;
}

CasePtr Prepare::process(const CasePtr& in) {
  auto [offset, scale] = nn::norm_of(*in);
  auto out = in->derive();
  out->set("fine_mr", nn::make_fine_mr(*in->get("image"), offset, scale, params_.get_int("height"),
                                       params_.get_int("width")));
  return out;
}

}  // namespace spineparse::fine
