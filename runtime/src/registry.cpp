#include "spineparse/registry.hpp"

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <filesystem>
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
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) out.push_back(item);
  return out;
}

// Names the components that differ between two "a-1|b-2|..." fingerprints.
std::string fingerprint_difference(const std::string& plugin, const std::string& host) {
  auto p = split(plugin, '|'), h = split(host, '|');
  std::string diff;
  for (std::size_t i = 0; i < std::max(p.size(), h.size()); ++i) {
    std::string a = i < p.size() ? p[i] : "(none)", b = i < h.size() ? h[i] : "(none)";
    if (a != b) diff += (diff.empty() ? "" : ", ") + a + " vs runtime's " + b;
  }
  return diff;
}
}  // namespace

struct Registry::Impl {
  std::map<std::string, Kind> kinds;
  // The factories in `kinds` are plugin code: ~Registry clears them before unloading these.
  std::vector<std::shared_ptr<boost::dll::shared_library>> libraries;
  std::vector<std::string> duplicates;      // found while a plugin registers
  std::vector<std::string> added_by_plugin;  // kinds the plugin being loaded registered
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}

Registry::~Registry() {
  // Factories are code of the plugins: destroy them while the libraries are still loaded.
  impl_->kinds.clear();
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
  impl_->kinds[kind] = Kind{std::move(description), std::move(factory), loading_plugin_};
  if (!loading_plugin_.empty()) impl_->added_by_plugin.push_back(kind);
}

const PluginInfo& Registry::load_plugin(const std::string& path_in) {
  std::error_code ec;
  fs::path path = fs::weakly_canonical(fs::path(path_in), ec);
  if (ec) path = path_in;
  for (const auto& p : plugins_) {
    if (p.path == path.string()) return p;  // already loaded: the same file twice is harmless
  }
  if (!fs::exists(path)) throw PluginError("plugin " + path_in + ": no such file");

  auto lib = std::make_shared<boost::dll::shared_library>();
  boost::system::error_code bec;
  lib->load(boost::dll::fs::path(path.string()),
            boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, bec);
  if (bec) {
    throw PluginError("plugin " + path.string() + " cannot be loaded: " + bec.message() +
                      " (missing dependency or not a shared library)");
  }
  if (!lib->has(SPINEPARSE_ENTRY_POINT_NAME)) {
    throw PluginError("plugin " + path.string() + " does not export " SPINEPARSE_ENTRY_POINT_NAME
                      "(): not a spineparse plugin");
  }
  auto entry = lib->get<const SpineparsePluginDescriptor*()>(SPINEPARSE_ENTRY_POINT_NAME);
  const SpineparsePluginDescriptor* d = entry();
  if (d == nullptr || d->name == nullptr) {
    throw PluginError("plugin " + path.string() + " returned no descriptor");
  }
  const std::string name = d->name;
  const std::string where = "plugin '" + name + "' (" + path.string() + ")";
  if (d->abi_major != SPINEPARSE_ABI_MAJOR) {
    throw PluginError(where + " was built for ABI " + std::to_string(d->abi_major) + "." +
                      std::to_string(d->abi_minor) + ", this runtime has ABI " +
                      std::to_string(SPINEPARSE_ABI_MAJOR) + "." +
                      std::to_string(SPINEPARSE_ABI_MINOR) +
                      ": the major version differs; rebuild the plugin against this runtime");
  }
  if (d->abi_minor > SPINEPARSE_ABI_MINOR) {
    throw PluginError(where + " needs ABI " + std::to_string(d->abi_major) + "." +
                      std::to_string(d->abi_minor) + ", newer than this runtime's " +
                      std::to_string(SPINEPARSE_ABI_MAJOR) + "." +
                      std::to_string(SPINEPARSE_ABI_MINOR) + ": update spineparse");
  }
  const std::string fp = d->fingerprint ? d->fingerprint : "";
  if (fp != runtime_fingerprint()) {
    throw PluginError(where + " was built with a different toolchain or library set (" +
                      fingerprint_difference(fp, runtime_fingerprint()) +
                      "); rebuild it with the same compiler, LibTorch, ITK and TBB");
  }
  for (const auto& p : plugins_) {
    if (p.name == name) {
      throw PluginError(where + ": a plugin of that name is already loaded from " + p.path);
    }
  }

  loading_plugin_ = name;
  impl_->duplicates.clear();
  impl_->added_by_plugin.clear();
  std::string register_error;
  try {
    d->register_stages(this);
  } catch (const std::exception& e) {
    register_error = e.what();
  } catch (...) {
    register_error = "unknown exception";
  }
  loading_plugin_.clear();
  if (!register_error.empty() || !impl_->duplicates.empty()) {
    for (const auto& k : impl_->added_by_plugin) impl_->kinds.erase(k);
    std::string msg = where + " refused: ";
    if (!register_error.empty()) msg += "register_stages failed: " + register_error;
    for (std::size_t i = 0; i < impl_->duplicates.size(); ++i) {
      msg += (i || !register_error.empty() ? "; " : "") + impl_->duplicates[i];
    }
    throw PluginError(msg);
  }
  impl_->libraries.push_back(std::move(lib));
  plugins_.push_back(PluginInfo{name, d->version ? d->version : "", path.string()});
  return plugins_.back();
}

int Registry::load_folder(const std::string& folder, std::vector<std::string>* errors) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return 0;
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() == ".so" && name.rfind("spineparse_", 0) == 0) {
      files.push_back(entry.path().string());
    }
  }
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

std::vector<std::string> default_plugin_folders() {
  std::vector<std::string> out;
  if (std::string(SPINEPARSE_BUILD_PLUGIN_DIR).size()) out.push_back(SPINEPARSE_BUILD_PLUGIN_DIR);
  if (const char* env = std::getenv("SPINEPARSE_PLUGIN_PATH")) {
    for (const auto& p : split(env, ':')) {
      if (!p.empty()) out.push_back(p);
    }
  }
  return out;
}

const char* runtime_fingerprint() { return SPINEPARSE_BUILD_FINGERPRINT; }

}  // namespace spineparse
