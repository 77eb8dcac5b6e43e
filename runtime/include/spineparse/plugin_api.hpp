// The one C entry point every plugin exports, and the macro that defines it.
//
//   SPINEPARSE_PLUGIN("io", "0.1.0", register_io_stages)
//
// expands to `extern "C" const SpineparsePluginDescriptor* spineparse_plugin_descriptor()`.
//
// The handshake checks what really crosses the boundary, as the plugin was compiled (the macro
// expands in the plugin's own translation unit, so every value below is the plugin's, not copied
// from the runtime):
//   - the runtime ABI: the major must equal the host's, the minor may not be newer;
//   - the C++ ABI of the types in the public headers (std::string, std::vector, std::function,
//     std::shared_ptr cross it): Itanium C++ ABI, the standard library (libstdc++ or libc++) and
//     libstdc++'s string ABI (_GLIBCXX_USE_CXX11_ABI). GCC and Clang plugins that agree on these
//     are accepted; the compiler is recorded for the record only;
//   - LibTorch and ITK versions, only for plugins that declare they use them (CMake:
//     spineparse_add_plugin(... TORCH ITK), or SPINEPARSE_PLUGIN_USES_TORCH / _ITK defined when
//     this header is included): one process holds one LibTorch and one ITK, so they must equal
//     those of the spineparse build and of the plugins already loaded.
// A refusal says what differs and how to rebuild.
#pragma once

#include <cstdint>

#include "spineparse/build_info.hpp"

// What each minor added (a plugin that uses it is refused by older hosts):
//   2.1 Registry::add_output_check; 2.2 StageContext::note; 2.3 StageContext::declare (cores,
//   devices) and threads_now; 2.4 declared parameters (param_set.hpp: ParamSet, describe,
//   StageWith, param_limits), the executor removing a stage's consumed fields, and the data types
//   in their own library (libspineparse_core, linked through spineparse::runtime); 2.5 parameter
//   types JSON and path list (ParamBuilder::json, path on a list member); 2.6 a device held in
//   scopes (ResourceUse::device_in_scopes, StageContext::hold_device) and StopRun; 2.7 declared
//   case attributes and typed values (Registry::declare_attributes, StageAttributes), checked by
//   validation; kinds of older plugins are not checked (a note says so); 2.8 the vector state
//   (vector_state.hpp: clear_upper_vector_state), cleared by the executor after each stage call.
#ifndef SPINEPARSE_ABI_MAJOR
#define SPINEPARSE_ABI_MAJOR 2
#endif
#ifndef SPINEPARSE_ABI_MINOR
#define SPINEPARSE_ABI_MINOR 8
#endif

#define SPINEPARSE_STR_(x) #x
#define SPINEPARSE_STR(x) SPINEPARSE_STR_(x)

// The C++ ABI tag of the translation unit that expands it: "itanium/libstdc++/cxx11" etc.
#if defined(__GXX_ABI_VERSION)
#define SPINEPARSE_CXX_ABI_BASE "itanium"
#else
#define SPINEPARSE_CXX_ABI_BASE "unknown"
#endif
#if defined(_LIBCPP_VERSION)
#define SPINEPARSE_CXX_STDLIB "libc++"
#elif defined(__GLIBCXX__) && defined(_GLIBCXX_USE_CXX11_ABI) && _GLIBCXX_USE_CXX11_ABI
#define SPINEPARSE_CXX_STDLIB "libstdc++/cxx11"
#elif defined(__GLIBCXX__)
#define SPINEPARSE_CXX_STDLIB "libstdc++/pre-cxx11"
#else
#define SPINEPARSE_CXX_STDLIB "unknown"
#endif
#define SPINEPARSE_CXX_ABI SPINEPARSE_CXX_ABI_BASE "/" SPINEPARSE_CXX_STDLIB

#if defined(__clang__)
#define SPINEPARSE_COMPILER                                                                        \
  "clang " SPINEPARSE_STR(__clang_major__) "." SPINEPARSE_STR(__clang_minor__) "." SPINEPARSE_STR( \
      __clang_patchlevel__)
#elif defined(__GNUC__)
#define SPINEPARSE_COMPILER                                                              \
  "gcc " SPINEPARSE_STR(__GNUC__) "." SPINEPARSE_STR(__GNUC_MINOR__) "." SPINEPARSE_STR( \
      __GNUC_PATCHLEVEL__)
#else
#define SPINEPARSE_COMPILER "unknown"
#endif

// The LibTorch and ITK versions a plugin was compiled against, read from their own headers.
#if defined(SPINEPARSE_PLUGIN_USES_TORCH)
#include <torch/version.h>
#define SPINEPARSE_PLUGIN_TORCH       \
  SPINEPARSE_STR(TORCH_VERSION_MAJOR) \
  "." SPINEPARSE_STR(TORCH_VERSION_MINOR) "." SPINEPARSE_STR(TORCH_VERSION_PATCH)
#else
#define SPINEPARSE_PLUGIN_TORCH ""
#endif
#if defined(SPINEPARSE_PLUGIN_USES_ITK)
#include <itkConfigure.h>
#define SPINEPARSE_PLUGIN_ITK       \
  SPINEPARSE_STR(ITK_VERSION_MAJOR) \
  "." SPINEPARSE_STR(ITK_VERSION_MINOR) "." SPINEPARSE_STR(ITK_VERSION_PATCH)
#else
#define SPINEPARSE_PLUGIN_ITK ""
#endif

namespace spineparse {
class Registry;
}

extern "C" {
// abi_major and abi_minor come first and stay there: the host reads them before anything else,
// and reads the rest only when the major matches.
struct SpineparsePluginDescriptor {
  std::uint32_t abi_major;
  std::uint32_t abi_minor;
  const char* name;
  const char* version;
  const char* cxx_abi;   // SPINEPARSE_CXX_ABI
  const char* compiler;  // SPINEPARSE_COMPILER (recorded, not compared)
  const char* torch;     // "" when the plugin does not use LibTorch
  const char* itk;       // "" when the plugin does not use ITK
  void (*register_stages)(spineparse::Registry* registry);
};
}

#define SPINEPARSE_ENTRY_POINT_NAME "spineparse_plugin_descriptor"

#define SPINEPARSE_PLUGIN(NAME, VERSION, REGISTER_FN)                                            \
  extern "C" __attribute__((visibility("default"))) const SpineparsePluginDescriptor*            \
  spineparse_plugin_descriptor() {                                                               \
    static const SpineparsePluginDescriptor d{SPINEPARSE_ABI_MAJOR,                              \
                                              SPINEPARSE_ABI_MINOR,                              \
                                              NAME,                                              \
                                              VERSION,                                           \
                                              SPINEPARSE_CXX_ABI,                                \
                                              SPINEPARSE_COMPILER,                               \
                                              SPINEPARSE_PLUGIN_TORCH,                           \
                                              SPINEPARSE_PLUGIN_ITK,                             \
                                              [](spineparse::Registry* r) { REGISTER_FN(*r); }}; \
    return &d;                                                                                   \
  }
