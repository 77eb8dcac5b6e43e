// spineparse stages [KIND]: every stage kind of every loaded plugin, or one kind (or one plugin's
// kinds: "coarse") in full: fields with dtype and axes, parameters, conventions and hooks.
#include <algorithm>
#include <cstdio>
#include <optional>
#include <tuple>

#include "commands.hpp"
#include "spineparse/graph.hpp"
#include "spineparse/registry.hpp"
#include "spineparse/text.hpp"

namespace spineparse::tools::cli {
namespace {

#ifndef SPINEPARSE_UNBUILT_PLUGINS
#define SPINEPARSE_UNBUILT_PLUGINS ""
#endif
// Plugin kinds this build left out, with the reason (one per line; "" when none).
const char* const kUnbuilt = SPINEPARSE_UNBUILT_PLUGINS;

std::string type_of(const FieldUse& f) {
  std::string type = f.dtype.empty() ? "any" : f.dtype;
  return f.axes.empty() ? type : type + " [" + f.axes + "]";
}
std::string type_of(const AttributeUse& u) { return u.type.empty() ? "text" : u.type; }

// Fields or attributes a kind reads or writes: names only, or in full with type and help.
template <class Use>
void print_uses(const char* what, const std::vector<Use>& uses, bool full) {
  if (uses.empty()) return;
  if (!full) {
    std::printf("  %s:", what);
    for (const auto& u : uses) std::printf(" %s%s", u.name.c_str(), u.optional ? "?" : "");
    std::printf("\n");
    return;
  }
  std::printf("  %s:\n", what);
  for (const auto& u : uses)
    std::printf("    %-18s %-22s %s%s\n", u.name.c_str(), type_of(u).c_str(),
                u.optional ? "(optional) " : "", u.help.c_str());
}

// The attributes a kind declares, for its params (the defaults); nullopt for a kind of a plugin
// built before attributes were declared.
std::optional<std::pair<std::vector<AttributeUse>, std::vector<AttributeUse>>> attributes_of(
    const Registry& registry, const StageDescription& d, const Params& params, bool resolved) {
  const StageAttributes* a = registry.attributes(d.kind);
  if (!a) return std::nullopt;
  auto uses = std::make_pair(a->reads, a->writes);
  if (resolved && a->for_params) a->for_params(params, uses.first, uses.second);
  if (a->writes_any) uses.second.push_back({"(any)", true, "attributes named when it runs"});
  return uses;
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
    if (const std::string limits = param_limits(p); !limits.empty())
      std::printf("    %-*s %-11s %s\n", width, "", "", limits.c_str());
  }
}

void print_kind(const Registry& registry, const StageDescription& d, bool full) {
  const std::string plugin = registry.plugin_of(d.kind);
  std::printf("\n%s  [%s%s, %s]%s\n  %s\n", d.kind.c_str(), d.is_source ? "source, " : "",
              d.concurrency == Concurrency::kSerial ? "serial" : "parallel", d.resource.c_str(),
              full && !plugin.empty() ? (" from plugin '" + plugin + "'").c_str() : "",
              d.summary.c_str());
  auto reads = d.reads, writes = d.writes;
  std::vector<ConfigIssue> issues;
  const Params defaults = resolve_params(d, {}, &issues);
  if (full && d.fields_for && issues.empty()) std::tie(reads, writes) = d.fields_for(defaults);
  print_uses("reads", reads, full);
  print_uses("writes", writes, full);
  if (full && d.fields_for) {
    std::printf("  (the fields depend on the parameters; shown %s)\n",
                issues.empty() ? "for the defaults" : "as declared: a parameter is required");
  }
  if (const auto uses = attributes_of(registry, d, defaults, full && issues.empty())) {
    print_uses("reads attributes", uses->first, full);
    print_uses("writes attributes", uses->second, full);
  } else if (full) {
    std::printf("  attributes: not declared (plugin built for ABI 2.%d)\n",
                registry.abi_minor_of(d.kind));
  }
  if (full && !d.consumes.empty()) {
    std::printf("  consumes (removed from the case after use): %s\n", join(d.consumes).c_str());
  }
  if (full) std::printf("  params:\n");
  print_params(d);
}

// The case attributes a kind reads and writes, one line each ("" when none).
void print_markdown_attributes(const Registry& registry, const StageDescription& d) {
  std::vector<ConfigIssue> issues;
  const Params defaults = resolve_params(d, {}, &issues);
  const auto uses = attributes_of(registry, d, defaults, issues.empty());
  if (!uses) return;
  auto line = [](const char* what, const std::vector<AttributeUse>& list) {
    if (list.empty()) return;
    std::printf("\n%s: %s.\n", what, join(list, ", ", [](const AttributeUse& u) {
                                       return "`" + u.name + "`" +
                                              (u.type.empty() ? "" : " (" + u.type + ")") +
                                              (u.optional ? " (optional)" : "");
                                     }).c_str());
  };
  line("Reads case attributes", uses->first);
  line("Writes case attributes", uses->second);
}

// docs/stages.md: every kind's parameters as a table, from the same declarations.
void print_markdown(const Registry& registry) {
  std::printf(
      "# Stages and their parameters\n\n"
      "Generated by `spineparse stages --markdown` from the stages' own declarations "
      "(`tests/tools/cli` checks that it is current); `spineparse stages KIND` shows the "
      "same with each kind's fields.\n");
  auto cell = [](std::string s) {
    std::string out;
    for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
    return out;
  };
  for (const auto* d : registry.kinds()) {
    std::printf("\n## %s\n\n%s\n", d->kind.c_str(), d->summary.c_str());
    print_markdown_attributes(registry, *d);
    if (d->params.empty()) {
      std::printf("\nNo parameters.\n");
      continue;
    }
    std::printf("\n| parameter | type | default | accepts | meaning |\n|---|---|---|---|---|\n");
    for (const auto& p : d->params) {
      const std::string def = p.required ? "(required)"
                              : p.default_value
                                  ? "`" + param_value_to_string(*p.default_value) + "`"
                                  : "(none)";
      std::printf("| `%s` | %s | %s | %s | %s |\n", p.name.c_str(), param_type_name(p.type),
                  cell(def).c_str(), cell(param_limits(p)).c_str(), cell(p.help).c_str());
    }
  }
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
  auto markdown = std::make_shared<bool>(false);
  auto* sub = app.add_subcommand(
      "stages", "List the stage kinds of every loaded plugin, or one kind in full");
  sub->add_option("kind", *kind,
                  "a stage kind (coarse.gcsn) or a plugin's prefix (coarse): shown in full");
  sub->add_option("--plugin-dir", *dirs, "extra folder to load plugins from (repeatable)");
  sub->add_flag("--markdown", *markdown,
                "every kind's parameters as Markdown tables (docs/stages.md is this)");
  sub->callback([dirs, kind, markdown] {
    Registry registry;
    const bool ok = load_default_plugins(registry, *dirs);
    if (*markdown) {
      print_markdown(registry);
      return set_exit_code(ok ? 0 : 2);
    }
    if (kind->empty()) {
      for (const auto& p : registry.plugins()) {
        std::printf("plugin %s %s (%s)\n", p.name.c_str(), p.version.c_str(), p.path.c_str());
      }
      if (*kUnbuilt) std::printf("not built: %s\n", kUnbuilt);
    }
    int shown = 0;
    for (const auto* d : registry.kinds()) {
      const bool match = kind->empty() || d->kind == *kind || d->kind.rfind(*kind + ".", 0) == 0;
      if (!match) continue;
      print_kind(registry, *d, !kind->empty());
      ++shown;
    }
    if (!kind->empty() && shown == 0) {
      std::fprintf(
          stderr,
          "error: no stage kind '%s' among the loaded plugins (spineparse stages lists them)\n%s",
          kind->c_str(), *kUnbuilt ? (std::string("not built: ") + kUnbuilt + "\n").c_str() : "");
      set_exit_code(2);
      return;
    }
    if (!kind->empty()) std::printf("%s", kConventions);
    set_exit_code(ok ? 0 : 2);
  });
}

}  // namespace spineparse::tools::cli
