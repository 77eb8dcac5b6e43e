#include "write_nifti.hpp"

#include <cmath>
#include <filesystem>

#include "io/case_attributes.hpp"
#include "io/volume_io.hpp"
#include "spineparse/files.hpp"

namespace spineparse::plugins::io {

using namespace spineparse::io;  // the library floor this group builds on
namespace fs = std::filesystem;

void WriteNiftiOptions::declare(ParamSet<WriteNiftiOptions>& s) {
  using O = WriteNiftiOptions;
  s.add(&O::field, "field", "case field to write");
  s.add(&O::name, "name",
        "file name; {id} is the case id (.nii.gz, .nii, .nrrd, .mha by extension)");
  s.add(&O::folder, "folder", "sub-folder of the run's output folder");
  s.add(&O::dtype, "dtype", "stored type: auto keeps the field's")
      .one_of({"auto", "uint8", "int16", "float32"});
}

StageDescription write_nifti_description() {
  StageDescription d = describe<WriteNiftiOptions>(
      "Writes a case field (default: labels) as NIfTI with the input's geometry, atomically");
  d.reads = {{"labels", false, "the field named by 'field'"}};
  d.fields_for = [](const Params& p) {
    return std::make_pair(std::vector<FieldUse>{{params_of<WriteNiftiOptions>().decode(p).field,
                                                 false, "written field"}},
                          std::vector<FieldUse>{});
  };
  return d;
}

StageAttributes write_nifti_attributes() {
  StageAttributes a;
  a.writes = {output_write("labels", "the file written (output:FIELD for the field written)")};
  a.for_params = [](const Params& p, std::vector<AttributeUse>&, std::vector<AttributeUse>& w) {
    w = {output_write(params_of<WriteNiftiOptions>().decode(p).field, "the file written")};
  };
  return a;
}

std::string WriteNifti::path_for(const std::string& id, const std::string& output_dir) const {
  return (fs::path(output_dir) / options_.folder / with_case_id(options_.name, id)).string();
}

CasePtr WriteNifti::process(const CasePtr& in) {
  const std::string& field = options_.field;
  auto data = in->get(field);
  const std::string& dtype = options_.dtype;
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
  const std::string path = file_of(in->id());
  write_volume(path, *to_write, in->geometry());
  auto out = in->derive();
  out->set_attr(output_attr(field), path);
  return out;
}

}  // namespace spineparse::plugins::io
