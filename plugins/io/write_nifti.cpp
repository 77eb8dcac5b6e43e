#include "write_nifti.hpp"

#include <cmath>
#include <filesystem>

#include "io/volume_io.hpp"
#include "spineparse/files.hpp"

namespace spineparse::io {
namespace fs = std::filesystem;

StageDescription write_nifti_description() {
  StageDescription d;
  d.kind = "io.write_nifti";
  d.summary =
      "Writes a case field (default: labels) as NIfTI with the input's geometry, atomically";
  d.params = {
      {"field", ParamType::kString, ParamValue(std::string("labels")), false,
       "case field to write"},
      {"name", ParamType::kString, ParamValue(std::string("seg_{id}.nii.gz")), false,
       "file name; {id} is the case id (.nii.gz, .nii, .nrrd, .mha by extension)"},
      {"folder", ParamType::kString, ParamValue(std::string()), false,
       "sub-folder of the run's output folder"},
      {"dtype",
       ParamType::kString,
       ParamValue(std::string("auto")),
       false,
       "stored type: auto keeps the field's",
       {"auto", "uint8", "int16", "float32"}},
  };
  d.reads = {{"labels", false, "the field named by 'field'"}};
  d.fields_for = [](const Params& p) {
    return std::make_pair(std::vector<FieldUse>{{p.get_string("field"), false, "written field"}},
                          std::vector<FieldUse>{});
  };
  return d;
}

void WriteNifti::open(const StageContext& ctx) { output_dir_ = ctx.output_dir; }

std::string WriteNifti::path_for(const std::string& id, const std::string& output_dir) const {
  return (fs::path(output_dir) / params_.get_string("folder") /
          with_case_id(params_.get_string("name"), id))
      .string();
}

std::vector<std::string> WriteNifti::outputs_for(const CaseSeed& seed,
                                                 const StageContext& ctx) const {
  return {path_for(seed.id, ctx.output_dir)};
}

CasePtr WriteNifti::process(const CasePtr& in) {
  const std::string field = params_.get_string("field");
  auto data = in->get(field);
  const std::string dtype = params_.get_string("dtype");
  NdArrayPtr to_write = data;
  auto convert = [&](auto tag) {
    using T = decltype(tag);
    auto out = NdArray::make<T>(data->shape());
    T* y = out->template data<T>();
    const std::int64_t n = data->numel();
    switch (data->dtype()) {
      case DType::kUInt8:
        for (std::int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(data->data<std::uint8_t>()[i]);
        break;
      case DType::kInt16:
        for (std::int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(data->data<std::int16_t>()[i]);
        break;
      case DType::kFloat32: {
        const float* x = data->data<float>();
        for (std::int64_t i = 0; i < n; ++i) {
          if (std::is_integral<T>::value)
            y[i] = static_cast<T>(std::lround(x[i]));
          else
            y[i] = static_cast<T>(x[i]);
        }
        break;
      }
      default:
        throw std::runtime_error("cannot convert " + std::string(dtype_name(data->dtype())));
    }
    to_write = out;
  };
  if (dtype == "uint8" && data->dtype() != DType::kUInt8) convert(std::uint8_t{});
  if (dtype == "int16" && data->dtype() != DType::kInt16) convert(std::int16_t{});
  if (dtype == "float32" && data->dtype() != DType::kFloat32) convert(float{});
  const std::string path = path_for(in->id(), output_dir_);
  write_volume(path, *to_write, in->geometry());
  auto out = in->derive();
  out->set_attr("output:" + field, path);
  return out;
}

}  // namespace spineparse::io
