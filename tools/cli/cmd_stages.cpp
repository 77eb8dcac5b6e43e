// spineparse stages [KIND]: every stage kind of every loaded plugin, or one kind (or one plugin's
// kinds: "coarse") in full: fields with dtype and axes, parameters, conventions and hooks.
#include <algorithm>
#include <cstdio>
#include <tuple>

#include "commands.hpp"
#include "spineparse/graph.hpp"
#include "spineparse/registry.hpp"

namespace spineparse::cli {
namespace {

void print_fields(const char* what, const std::vector<FieldUse>& fields, bool full) {
  if (fields.empty()) return;
  if (!full) {
    std::printf("  %s:", what);
    for (const auto& f : fields) std::printf(" %s%s", f.name.c_str(), f.optional ? "?" : "");
    std::printf("\n");
    return;
  }
  std::printf("  %s:\n", what);
  for (const auto& f : fields) {
    std::string type = f.dtype.empty() ? "any" : f.dtype;
    if (!f.axes.empty()) type += " [" + f.axes + "]";
    std::printf("    %-18s %-22s %s%s\n", f.name.c_str(), type.c_str(),
                f.optional ? "(optional) " : "", f.help.c_str());
  }
}

void print_params(const StageDescription& d) {
  int width = 14;  // the longest parameter name of the stage sets the column
  for (const auto& p : d.params) width = std::max(width, static_cast<int>(p.name.size()));
  for (const auto& p : d.params) {
    const std::string def = p.default_value ? param_value_to_string(*p.default_value) : "";
    const std::string shown =
        p.default_value ? "[default " + (def.empty() ? std::string("\"\"") : def) + "] " : "";
    std::printf("    %-*s %-11s %s%s%s\n", width, p.name.c_str(), param_type_name(p.type),
                p.required ? "(required) " : "", shown.c_str(), p.help.c_str());
    if (!p.allowed.empty()) {
      std::string a;
      for (const auto& v : p.allowed) a += (a.empty() ? "" : ", ") + v;
      std::printf("    %-*s %-11s one of: %s\n", width, "", "", a.c_str());
    }
  }
}

void print_kind(const StageDescription& d, const std::string& plugin, bool full) {
  std::printf("\n%s  [%s%s, %s]%s\n  %s\n", d.kind.c_str(), d.is_source ? "source, " : "",
              d.concurrency == Concurrency::kSerial ? "serial" : "parallel", d.resource.c_str(),
              full && !plugin.empty() ? (" from plugin '" + plugin + "'").c_str() : "",
              d.summary.c_str());
  auto reads = d.reads, writes = d.writes;
  std::vector<ConfigIssue> issues;
  const Params defaults = resolve_params(d, {}, &issues);
  if (full && d.fields_for && issues.empty()) std::tie(reads, writes) = d.fields_for(defaults);
  print_fields("reads", reads, full);
  print_fields("writes", writes, full);
  if (full && d.fields_for) {
    std::printf("  (the fields depend on the parameters; shown %s)\n",
                issues.empty() ? "for the defaults" : "as declared: a parameter is required");
  }
  if (full && !d.consumes.empty()) {
    std::string c;
    for (const auto& f : d.consumes) c += (c.empty() ? "" : ", ") + f;
    std::printf("  consumes (removed from the case after use): %s\n", c.c_str());
  }
  if (full) std::printf("  params:\n");
  print_params(d);
}

const char* kConventions = R"(
Conventions for every stage:
  arrays   row-major, slowest axis first. Volumes are [D,H,W]: D the slices (the file's third
           axis), H and W the file's first two axes; class maps add C in front ([C,D,H,W]).
  geometry Case::geometry(): spacing, origin and direction as ITK reports them (LPS, mm), in
           the file's axis order (H, W, D), so spacing[2] is the slice spacing.
  hooks    open(ctx) once before any case; process(case) per case (concurrently when parallel;
           throwing fails only that case); close() after the last case; enumerate(ctx) for
           sources; outputs_for(seed, ctx) lists a case's files so that --resume can skip it;
           after_run(run.json, ctx) once after the run's record is written (by `merge` for a
           sharded run, on an instance never opened: use only the record, ctx and params).
)";

}  // namespace

void add_stages(CLI::App& app) {
  auto dirs = std::make_shared<std::vector<std::string>>();
  auto kind = std::make_shared<std::string>();
  auto* sub = app.add_subcommand(
      "stages", "List the stage kinds of every loaded plugin, or one kind in full");
  sub->add_option("kind", *kind,
                  "a stage kind (coarse.gcsn) or a plugin's prefix (coarse): shown in full");
  sub->add_option("--plugin-dir", *dirs, "extra folder to load plugins from (repeatable)");
  sub->callback([dirs, kind] {
    Registry registry;
    const bool ok = load_default_plugins(registry, *dirs);
    if (kind->empty()) {
      for (const auto& p : registry.plugins()) {
        std::printf("plugin %s %s (%s)\n", p.name.c_str(), p.version.c_str(), p.path.c_str());
      }
    }
    int shown = 0;
    for (const auto* d : registry.kinds()) {
      const bool match = kind->empty() || d->kind == *kind || d->kind.rfind(*kind + ".", 0) == 0;
      if (!match) continue;
      print_kind(*d, registry.plugin_of(d->kind), !kind->empty());
      ++shown;
    }
    if (!kind->empty() && shown == 0) {
      std::fprintf(
          stderr,
          "error: no stage kind '%s' among the loaded plugins (spineparse stages lists them)\n",
          kind->c_str());
      set_exit_code(2);
      return;
    }
    if (!kind->empty()) std::printf("%s", kConventions);
    set_exit_code(ok ? 0 : 2);
  });
}

}  // namespace spineparse::cli
