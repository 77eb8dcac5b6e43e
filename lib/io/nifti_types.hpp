// The NIfTI datatype codes the readers accept, the one place they are listed: each code with its
// element type and ITK's name for that type (the component type volume_info reports). The text
// headers (NRRD, MetaImage) map their own type names to these codes (header_text.cpp).
#pragma once

#include <cstdint>
#include <tuple>

namespace spineparse::io {

template <class T>
struct NiftiType {
  using type = T;
  int code;
  const char* itk_name;
};

inline constexpr std::tuple kNiftiTypes{NiftiType<std::uint8_t>{2, "unsigned_char"},
                                        NiftiType<std::int16_t>{4, "short"},
                                        NiftiType<std::int32_t>{8, "int"},
                                        NiftiType<float>{16, "float"},
                                        NiftiType<double>{64, "double"},
                                        NiftiType<std::int8_t>{256, "char"},
                                        NiftiType<std::uint16_t>{512, "unsigned_short"},
                                        NiftiType<std::uint32_t>{768, "unsigned_int"},
                                        NiftiType<std::int64_t>{1024, "long_long"},
                                        NiftiType<std::uint64_t>{1280, "unsigned_long_long"}};

// Calls f(NiftiType<T>) for the entry of `code`; false (f not called) when no entry has it.
template <class F>
bool visit_nifti_type(int code, F&& f) {
  return std::apply([&](const auto&... t) { return ((t.code == code && (f(t), true)) || ...); },
                    kNiftiTypes);
}

}  // namespace spineparse::io
