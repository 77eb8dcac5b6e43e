// Registry: owns every loaded plugin library and every registered stage kind.
//
// Libraries stay loaded as long as the registry lives; anything a plugin made (stages, payloads,
// exception objects) must be gone before it is destroyed, which the executor guarantees by
// holding the registry for the whole run.
#pragma once

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "spineparse/stage.hpp"

struct SpineparsePluginDescriptor;

namespace spineparse {

struct PluginInfo {
  std::string name;
  std::string version;
  std::string path;        // empty for stages registered in-process
  std::string compiler;    // what built it, as it says
  std::string torch, itk;  // the LibTorch/ITK versions it uses ("" for none)
};

class PluginError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Called by plugins from their register function. Throws PluginError on a duplicate kind.
  void add_stage(StageDescription description, StageFactory factory);
  // The same for a stage class: its instances are made with T(params), or T() when T takes
  // no parameters.
  template <class T>
  void add_stage(StageDescription description) {
    static_assert(std::is_base_of_v<Stage, T>, "add_stage<T>: T must derive from Stage");
    add_stage(std::move(description), [](const Params& p) -> std::unique_ptr<Stage> {
      if constexpr (std::is_constructible_v<T, const Params&>)
        return std::make_unique<T>(p);
      else
        return std::make_unique<T>();
    });
  }

  // The case attributes and typed values a kind reads and writes (ABI 2.7); call it after
  // add_stage for the kind. A kind of a plugin built for ABI 2.7 or later that declares none
  // reads and writes none.
  void declare_attributes(const std::string& kind, StageAttributes attributes);
  // What the kind declared; nullptr for a kind of a plugin built before ABI 2.7, whose attribute
  // uses are unknown (validation lets it read anything and the nodes below it read anything).
  const StageAttributes* attributes(const std::string& kind) const;

  // add_stage<T> and declare_attributes in one call.
  template <class T>
  void add_stage(StageDescription description, StageAttributes attributes) {
    const std::string kind = description.kind;
    add_stage<T>(std::move(description));
    declare_attributes(kind, std::move(attributes));
  }

  // Loads one plugin library by path. Throws PluginError with the reason on refusal.
  const PluginInfo& load_plugin(const std::string& path);
  // Loads every *.so in a folder whose name starts with "spineparse_" (sorted). Returns the
  // number loaded; refusals are collected in `errors` and do not stop the others. What was
  // passed over goes to `skipped`, with the reason: a folder that does not exist or is a file,
  // a .so not named spineparse_*.so, an entry that is not a regular file.
  int load_folder(const std::string& folder, std::vector<std::string>* errors,
                  std::vector<std::string>* skipped = nullptr);

  const StageDescription* find(const std::string& kind) const;
  std::unique_ptr<Stage> create(const std::string& kind, const Params& params) const;
  std::vector<const StageDescription*> kinds() const;
  const std::vector<PluginInfo>& plugins() const { return plugins_; }
  // The plugin that registered a kind ("" for in-process registrations).
  std::string plugin_of(const std::string& kind) const;
  // The runtime ABI minor the kind's plugin was built for (this runtime's for in-process ones):
  // the executor reads newer fields of what a stage hands it only from plugins that know them.
  int abi_minor_of(const std::string& kind) const;

  // How --resume tells a complete output from a damaged one: `check` says why the file at a path
  // ending in `suffix` (".nii.gz") is not a complete output, or returns "" when it is. Plugins
  // add checks for the formats they write; the longest matching suffix wins. ABI 2.1.
  using OutputCheck = std::function<std::string(const std::string& path)>;
  void add_output_check(const std::string& suffix, OutputCheck check);
  // Why `path` is not a complete output ("" when it is): not a regular file, empty, or what the
  // matching check says.
  std::string check_output(const std::string& path) const;

 private:
  void register_plugin_stages(const SpineparsePluginDescriptor& d, const std::string& where);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<PluginInfo> plugins_;
  std::string loading_plugin_;
  int loading_abi_minor_ = -1;  // while a plugin registers its kinds
};

// Folders searched by default: spineparse/plugins beside the runtime library (installed or in
// the build tree), then SPINEPARSE_PLUGIN_PATH (colon-separated).
std::vector<std::string> default_plugin_folders();

// The folder of libspineparse_runtime.so as loaded in this process.
std::string runtime_library_dir();

// The C++ ABI tag the runtime was compiled for (see plugin_api.hpp), e.g.
// "itanium/libstdc++/cxx11".
const char* runtime_cxx_abi();

}  // namespace spineparse
