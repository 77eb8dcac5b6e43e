// spineparse stages: every stage kind of every loaded plugin, with its parameters.
#include <algorithm>
#include <cstdio>

#include "commands.hpp"
#include "spineparse/registry.hpp"

namespace spineparse::cli {

void add_stages(CLI::App& app) {
  auto dirs = std::make_shared<std::vector<std::string>>();
  auto* sub = app.add_subcommand("stages", "List every stage kind from every loaded plugin");
  sub->add_option("--plugin-dir", *dirs, "extra folder to load plugins from (repeatable)");
  sub->callback([dirs] {
    Registry registry;
    const bool ok = load_default_plugins(registry, *dirs);
    for (const auto& p : registry.plugins()) {
      std::printf("plugin %s %s (%s)\n", p.name.c_str(), p.version.c_str(), p.path.c_str());
    }
    for (const auto* d : registry.kinds()) {
      std::printf("\n%s  [%s%s, %s]\n  %s\n", d->kind.c_str(), d->is_source ? "source, " : "",
                  d->concurrency == Concurrency::kSerial ? "serial" : "parallel",
                  d->resource.c_str(), d->summary.c_str());
      auto fields = [](const char* what, const std::vector<FieldUse>& f) {
        if (f.empty()) return;
        std::printf("  %s:", what);
        for (const auto& x : f) std::printf(" %s%s", x.name.c_str(), x.optional ? "?" : "");
        std::printf("\n");
      };
      fields("reads", d->reads);
      fields("writes", d->writes);
      int name_width = 14;  // the longest parameter name of the stage sets the column
      for (const auto& p : d->params) name_width = std::max(name_width, static_cast<int>(p.name.size()));
      for (const auto& p : d->params) {
        std::string def = p.default_value ? param_value_to_string(*p.default_value) : "";
        std::printf("    %-*s %-11s %s%s%s\n", name_width, p.name.c_str(), param_type_name(p.type),
                    p.required ? "(required) " : "",
                    p.default_value ? ("[default " + (def.empty() ? std::string("\"\"") : def) + "] ").c_str() : "",
                    p.help.c_str());
        if (!p.allowed.empty()) {
          std::string a;
          for (const auto& v : p.allowed) a += (a.empty() ? "" : ", ") + v;
          std::printf("    %-*s %-11s one of: %s\n", name_width, "", "", a.c_str());
        }
      }
    }
    set_exit_code(ok ? 0 : 2);
  });
}

}  // namespace spineparse::cli
