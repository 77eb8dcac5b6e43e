#include "label_volumes.hpp"

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace example {
using namespace spineparse;

// The parameters, declared once: each a member of the options struct, its initial value the
// default. The same set describes them (validation, `spineparse stages`) and decodes a node's.
void LabelVolumesOptions::declare(ParamSet<LabelVolumesOptions>& s) {
  s.add(&LabelVolumesOptions::field, "field", "the label map to measure (labels, mask, ...)");
}

StageDescription label_volumes_description() {
  StageDescription d = spineparse::describe<LabelVolumesOptions>(
      "Volume of every label in millilitres (an example plugin built outside the tree)");
  // The field read depends on the parameter: tell validation which one.
  d.fields_for = [](const Params& p) {
    return std::make_pair(
        std::vector<FieldUse>{{spineparse::params_of<LabelVolumesOptions>().decode(p).field, false,
                               "uint8 [D,H,W]", "uint8", "D,H,W"}},
        std::vector<FieldUse>{});
  };
  return d;
}

CasePtr LabelVolumes::process(const CasePtr& in) {
  auto labels = in->get(options_.field);
  if (labels->dtype() != DType::kUInt8)
    throw std::runtime_error("field '" + options_.field + "' is not uint8");
  std::array<std::int64_t, 256> counts{};
  const std::uint8_t* p = labels->data<std::uint8_t>();
  for (std::int64_t i = 0; i < labels->numel(); ++i) ++counts[p[i]];
  const auto& s = in->geometry().spacing;
  const double ml_per_voxel = s[0] * s[1] * s[2] / 1000.0;
  auto out = in->derive();
  double total = 0;
  for (int l = 1; l < 256; ++l) {
    if (counts[l] == 0) continue;
    out->set_metric("volume_ml_" + std::to_string(l), counts[l] * ml_per_voxel);
    total += counts[l] * ml_per_voxel;
  }
  out->set_metric("labelled_ml", total);
  return out;
}

}  // namespace example
