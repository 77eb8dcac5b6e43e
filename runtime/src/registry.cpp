#include "spineparse/registry.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>

#include "spineparse/build_info.hpp"
#include "spineparse/plugin_api.hpp"

namespace spineparse {
namespace fs = std::filesystem;

namespace {
struct Kind {
  StageDescription description;
  StageFactory factory;
  std::string plugin;
  int abi_minor = SPINEPARSE_ABI_MINOR;
  std::optional<StageAttributes> attributes;  // Registry::declare_attributes
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) out.push_back(item);
  return out;
}

// The libraries whose objects cross plugin boundaries in one process, with the versions the
// spineparse build used (compile definitions of this file; "" when it did not use one).
#ifndef SPINEPARSE_HOST_TORCH
#define SPINEPARSE_HOST_TORCH ""
#endif
#ifndef SPINEPARSE_HOST_ITK
#define SPINEPARSE_HOST_ITK ""
#endif

std::string abi_string(std::uint32_t major, std::uint32_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

// Why a descriptor's runtime ABI or C++ ABI does not fit this host, or "".
std::string abi_mismatch(const SpineparsePluginDescriptor& d) {
  const std::string host = abi_string(SPINEPARSE_ABI_MAJOR, SPINEPARSE_ABI_MINOR);
  if (d.abi_major != SPINEPARSE_ABI_MAJOR) {
    return "was built for ABI " + abi_string(d.abi_major, d.abi_minor) + ", this runtime has ABI " +
           host + ": the major version differs; rebuild the plugin against this spineparse (" +
           "find_package(spineparse) from its installation)";
  }
  if (d.abi_minor > SPINEPARSE_ABI_MINOR) {
    return "needs ABI " + abi_string(d.abi_major, d.abi_minor) + ", newer than this runtime's " +
           host + ": update spineparse";
  }
  const std::string abi = d.cxx_abi ? d.cxx_abi : "";
  if (abi != SPINEPARSE_CXX_ABI) {
    return std::string("was compiled for the C++ ABI ") + (abi.empty() ? "(none)" : abi) +
           " (compiler " + (d.compiler ? d.compiler : "?") + "), this runtime for " +
           SPINEPARSE_CXX_ABI + " (" + SPINEPARSE_COMPILER +
           "): standard-library types cross the plugin boundary, so rebuild the plugin with the "
           "same standard library and string ABI (_GLIBCXX_USE_CXX11_ABI)";
  }
  return "";
}

// LibTorch/ITK: the version in this process and who brought it (the build, or a plugin).
using LibraryUsers = std::map<std::string, std::pair<std::string, std::string>>;

// Throws PluginError when a plugin's `version` of `library` differs from the one in use.
void check_library(const LibraryUsers& users, const std::string& where, const std::string& library,
                   const std::string& version, const std::string& how) {
  if (version.empty()) return;  // the plugin does not use it
  auto it = users.find(library);
  if (it == users.end() || it->second.first == version) return;
  const auto& [have, who] = it->second;
  throw PluginError(where + " was built against " + library + " " + version + ", but " + who +
                    " uses " + library + " " + have + " and one process holds one " + library +
                    ": rebuild the plugin against " + library + " " + have + " (" + how +
                    " from that installation)");
}
}  // namespace

struct Registry::Impl {
  std::map<std::string, Kind> kinds;
  // The factories in `kinds` are plugin code: ~Registry clears them before unloading these.
  std::vector<std::shared_ptr<boost::dll::shared_library>> libraries;
  std::vector<std::string> duplicates;       // found while a plugin registers
  std::vector<std::string> added_by_plugin;  // kinds the plugin being loaded registered
  LibraryUsers library_users;
  std::map<std::string, OutputCheck> output_checks;  // by file name suffix; plugin code too
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {
  if (*SPINEPARSE_HOST_TORCH)
    impl_->library_users["LibTorch"] = {SPINEPARSE_HOST_TORCH, "this spineparse build"};
  if (*SPINEPARSE_HOST_ITK)
    impl_->library_users["ITK"] = {SPINEPARSE_HOST_ITK, "this spineparse build"};
}

Registry::~Registry() {
  // Factories are code of the plugins: destroy them while the libraries are still loaded.
  impl_->kinds.clear();
  impl_->output_checks.clear();
  impl_->libraries.clear();
}

void Registry::add_stage(StageDescription description, StageFactory factory) {
  const std::string kind = description.kind;
  if (impl_->kinds.count(kind)) {
    const std::string other = impl_->kinds[kind].plugin;
    const std::string msg = "stage kind '" + kind + "' is registered twice (first by " +
                            (other.empty() ? std::string("the host") : "plugin '" + other + "'") +
                            ")";
    if (!loading_plugin_.empty()) {
      impl_->duplicates.push_back(msg);
      return;
    }
    throw PluginError(msg);
  }
  impl_->kinds[kind] = Kind{std::move(description), std::move(factory), loading_plugin_,
                            loading_abi_minor_ >= 0 ? loading_abi_minor_ : SPINEPARSE_ABI_MINOR};
  if (!loading_plugin_.empty()) impl_->added_by_plugin.push_back(kind);
}

namespace {
// The library at `path`, loaded, and its descriptor. Throws PluginError saying why not.
std::pair<std::shared_ptr<boost::dll::shared_library>, const SpineparsePluginDescriptor*>
open_plugin(const fs::path& path) {
  auto lib = std::make_shared<boost::dll::shared_library>();
  boost::system::error_code bec;
  lib->load(boost::dll::fs::path(path.string()),
            boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, bec);
  if (bec) {
    throw PluginError("plugin " + path.string() + " cannot be loaded: " + bec.message() +
                      " (missing dependency or not a shared library)");
  }
  if (!lib->has(SPINEPARSE_ENTRY_POINT_NAME)) {
    throw PluginError("plugin " + path.string() +
                      " does not export " SPINEPARSE_ENTRY_POINT_NAME
                      "(): not a spineparse plugin");
  }
  auto entry = lib->get<const SpineparsePluginDescriptor*()>(SPINEPARSE_ENTRY_POINT_NAME);
  const SpineparsePluginDescriptor* d = entry();
  if (d == nullptr || d->name == nullptr) {
    throw PluginError("plugin " + path.string() + " returned no descriptor");
  }
  return {lib, d};
}
}  // namespace

const PluginInfo& Registry::load_plugin(const std::string& path_in) {
  std::error_code ec;
  fs::path path = fs::weakly_canonical(fs::path(path_in), ec);
  if (ec) path = path_in;
  for (const auto& p : plugins_) {
    if (p.path == path.string()) return p;  // already loaded: the same file twice is harmless
  }
  if (!fs::exists(path)) throw PluginError("plugin " + path_in + ": no such file");
  auto [lib, d] = open_plugin(path);
  const std::string name = d->name;
  const std::string where = "plugin '" + name + "' (" + path.string() + ")";
  if (const std::string why = abi_mismatch(*d); !why.empty()) throw PluginError(where + " " + why);
  check_library(impl_->library_users, where, "LibTorch", d->torch ? d->torch : "",
                "find_package(Torch)");
  check_library(impl_->library_users, where, "ITK", d->itk ? d->itk : "", "find_package(ITK)");
  for (const auto& p : plugins_) {
    if (p.name == name) {
      throw PluginError(where + ": a plugin of that name is already loaded from " + p.path);
    }
  }
  register_plugin_stages(*d, where);
  impl_->libraries.push_back(std::move(lib));
  PluginInfo info{name, d->version ? d->version : "", path.string()};
  info.compiler = d->compiler ? d->compiler : "";
  info.torch = d->torch ? d->torch : "";
  info.itk = d->itk ? d->itk : "";
  for (const auto& [library, version] : {std::pair{"LibTorch", info.torch}, {"ITK", info.itk}}) {
    if (!version.empty() && !impl_->library_users.count(library)) {
      impl_->library_users[library] = {version, "plugin '" + name + "'"};
    }
  }
  plugins_.push_back(std::move(info));
  return plugins_.back();
}

// Runs the plugin's register function. A refused plugin leaves nothing behind: its kinds and
// its output checks (code in its library, which is unloaded when load_plugin throws) go, and
// checks it replaced come back.
void Registry::register_plugin_stages(const SpineparsePluginDescriptor& d,
                                      const std::string& where) {
  loading_plugin_ = d.name;
  loading_abi_minor_ = static_cast<int>(d.abi_minor);
  impl_->duplicates.clear();
  impl_->added_by_plugin.clear();
  auto checks_before = impl_->output_checks;
  std::string register_error;
  try {
    d.register_stages(this);
  } catch (const std::exception& e) {
    register_error = e.what();
  } catch (...) {
    register_error = "unknown exception";
  }
  loading_plugin_.clear();
  loading_abi_minor_ = -1;
  if (register_error.empty() && impl_->duplicates.empty()) return;
  for (const auto& k : impl_->added_by_plugin) impl_->kinds.erase(k);
  impl_->output_checks = std::move(checks_before);
  std::string msg = where + " refused: ";
  if (!register_error.empty()) msg += "register_stages failed: " + register_error;
  for (std::size_t i = 0; i < impl_->duplicates.size(); ++i) {
    msg += (i || !register_error.empty() ? "; " : "") + impl_->duplicates[i];
  }
  throw PluginError(msg);
}

int Registry::load_folder(const std::string& folder, std::vector<std::string>* errors,
                          std::vector<std::string>* skipped) {
  auto skip = [&](const std::string& what) {
    if (skipped) skipped->push_back(what);
  };
  std::error_code ec;
  if (!fs::exists(folder, ec)) {
    skip("plugin folder " + folder + " does not exist");
    return 0;
  }
  if (!fs::is_directory(folder, ec)) {
    skip("plugin folder " + folder + " is a file, not a folder (give the folder that holds it)");
    return 0;
  }
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".so") continue;
    if (name.rfind("spineparse_", 0) != 0) {
      skip(entry.path().string() + ": not named spineparse_*.so, so not loaded as a plugin");
    } else if (!entry.is_regular_file(ec)) {
      skip(entry.path().string() + ": not a regular file (a dangling link or a folder)");
    } else {
      files.push_back(entry.path().string());
    }
  }
  if (ec) skip("plugin folder " + folder + " cannot be listed: " + ec.message());
  std::sort(files.begin(), files.end());
  int loaded = 0;
  for (const auto& f : files) {
    try {
      load_plugin(f);
      ++loaded;
    } catch (const PluginError& e) {
      if (errors) errors->push_back(e.what());
    }
  }
  return loaded;
}

const StageDescription* Registry::find(const std::string& kind) const {
  auto it = impl_->kinds.find(kind);
  return it == impl_->kinds.end() ? nullptr : &it->second.description;
}

std::unique_ptr<Stage> Registry::create(const std::string& kind, const Params& params) const {
  auto it = impl_->kinds.find(kind);
  if (it == impl_->kinds.end()) throw PluginError("unknown stage kind '" + kind + "'");
  return it->second.factory(params);
}

std::vector<const StageDescription*> Registry::kinds() const {
  std::vector<const StageDescription*> out;
  for (const auto& kv : impl_->kinds) out.push_back(&kv.second.description);
  return out;
}

std::string Registry::plugin_of(const std::string& kind) const {
  auto it = impl_->kinds.find(kind);
  return it == impl_->kinds.end() ? "" : it->second.plugin;
}

void Registry::declare_attributes(const std::string& kind, StageAttributes attributes) {
  auto it = impl_->kinds.find(kind);
  if (it == impl_->kinds.end())
    throw PluginError("declare_attributes: stage kind '" + kind + "' is not registered (call " +
                      "add_stage first)");
  it->second.attributes = std::move(attributes);
}

const StageAttributes* Registry::attributes(const std::string& kind) const {
  static const StageAttributes kNone;
  auto it = impl_->kinds.find(kind);
  if (it == impl_->kinds.end()) return nullptr;
  if (it->second.attributes) return &*it->second.attributes;
  return it->second.abi_minor >= 7 ? &kNone : nullptr;
}

int Registry::abi_minor_of(const std::string& kind) const {
  auto it = impl_->kinds.find(kind);
  return it == impl_->kinds.end() ? SPINEPARSE_ABI_MINOR : it->second.abi_minor;
}

void Registry::add_output_check(const std::string& suffix, OutputCheck check) {
  impl_->output_checks[suffix] = std::move(check);
}

std::string Registry::check_output(const std::string& path) const {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return "missing";
  if (!fs::is_regular_file(st)) return "not a regular file";
  if (fs::file_size(path, ec) == 0 || ec) return "empty";
  const OutputCheck* best = nullptr;
  std::size_t best_len = 0;
  for (const auto& [suffix, check] : impl_->output_checks) {
    if (suffix.size() > best_len && path.size() >= suffix.size() &&
        path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) {
      best = &check;
      best_len = suffix.size();
    }
  }
  if (!best) return "";
  try {
    return (*best)(path);
  } catch (const std::exception& e) {
    return e.what();
  }
}

std::string runtime_library_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&runtime_library_dir), &info) == 0 || !info.dli_fname)
    return "";
  std::error_code ec;
  auto p = fs::weakly_canonical(fs::path(info.dli_fname), ec);
  return (ec ? fs::path(info.dli_fname) : p).parent_path().string();
}

std::vector<std::string> default_plugin_folders() {
  std::vector<std::string> out;
  // Installed: PREFIX/lib/spineparse/plugins beside PREFIX/lib/libspineparse_runtime.so; the
  // build tree has the same shape (build/lib/spineparse/plugins).
  const std::string lib = runtime_library_dir();
  if (!lib.empty()) out.push_back((fs::path(lib) / "spineparse" / "plugins").string());
  if (const char* env = std::getenv("SPINEPARSE_PLUGIN_PATH")) {
    for (const auto& p : split(env, ':')) {
      if (!p.empty()) out.push_back(p);
    }
  }
  return out;
}

const char* runtime_cxx_abi() { return SPINEPARSE_CXX_ABI; }

}  // namespace spineparse
