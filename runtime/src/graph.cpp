#include "spineparse/graph.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

#include "param_json.hpp"
#include "spineparse/files.hpp"
#include "spineparse/text.hpp"

namespace spineparse {
namespace fs = std::filesystem;
using nlohmann::json;

std::string ConfigIssue::to_string() const {
  return (pointer.empty() ? std::string("(graph)") : pointer) + ": " + message + " [" + code + "]";
}

const NodeSpec* GraphSpec::node(const std::string& id) const {
  for (const auto& n : nodes) {
    if (n.id == id) return &n;
  }
  return nullptr;
}

namespace {

std::string escape_pointer(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

const char* json_type(const json& j) {
  if (j.is_boolean()) return "boolean";
  if (j.is_number_integer()) return "integer";
  if (j.is_number()) return "number";
  if (j.is_string()) return "string";
  if (j.is_array()) return "array";
  if (j.is_object()) return "object";
  return "null";
}

// A --set value as the JSON its parameter's type reads: strings and paths as they are, lists
// split at commas, everything else parsed as JSON (left a string when it is not, so that the
// type check reports it, or a JSON parameter holds the string).
json override_value(const ParamSpec& spec, const std::string& value) {
  switch (spec.type) {
    case ParamType::kString:
    case ParamType::kPath:
      return value;
    case ParamType::kStringList:
    case ParamType::kPathList: {
      json arr = json::array();
      std::stringstream ss(value);
      std::string item;
      while (std::getline(ss, item, ',')) {
        if (!item.empty()) arr.push_back(item);
      }
      return arr;
    }
    default:
      try {
        return json::parse(value);
      } catch (...) {
        return value;
      }
  }
}

std::string known_params(const StageDescription& d) {
  std::string known = join(d.params, ", ", [](const ParamSpec& s) { return s.name; });
  return known.empty() ? "none" : known;
}

// Fills every parameter `values` lacks with its default; calls missing(spec) for a required one.
template <class Missing>
void fill_defaults(const StageDescription& d, std::map<std::string, ParamValue>& values,
                   Missing missing) {
  for (const auto& p : d.params) {
    if (values.count(p.name)) continue;
    if (p.default_value)
      values[p.name] = *p.default_value;
    else if (p.required)
      missing(p);
  }
}

class Validator {
 public:
  Validator(Registry& registry, std::string path) : registry_(registry), path_(std::move(path)) {}

  void issue(const std::string& code, const std::string& pointer, const std::string& msg) {
    issues_.push_back({code, pointer, msg});
  }

  // Converts a JSON value to a typed parameter value, or reports why not.
  std::optional<ParamValue> convert(const ParamSpec& spec, const json& v, const std::string& ptr,
                                    const std::string& node_id, bool from_file) {
    auto bad_type = [&] {
      issue("bad_param_type", ptr,
            "node '" + node_id + "': parameter '" + spec.name + "' must be " +
                param_type_name(spec.type) + ", got " + json_type(v) + " " +
                json_text(v));
      return std::nullopt;
    };
    ParamValue out;
    switch (spec.type) {
      case ParamType::kBool:
        if (!v.is_boolean()) return bad_type();
        out = v.get<bool>();
        break;
      case ParamType::kInt:
        if (v.is_number_integer()) {
          out = v.get<std::int64_t>();
        } else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
                   std::fabs(v.get<double>()) < 9.2e18) {  // whole and within int64
          out = static_cast<std::int64_t>(v.get<double>());
        } else {
          return bad_type();
        }
        break;
      case ParamType::kFloat:
        if (!v.is_number()) return bad_type();
        out = v.get<double>();
        break;
      case ParamType::kString:
      case ParamType::kPath: {
        if (!v.is_string()) return bad_type();
        std::string s = v.get<std::string>();
        if (spec.type == ParamType::kPath && s[0] != '@') s = absolute_path(s, from_file);
        out = s;
        break;
      }
      case ParamType::kStringList:
      case ParamType::kPathList: {
        if (!v.is_array()) return bad_type();
        std::vector<std::string> list;
        for (const auto& e : v) {
          if (!e.is_string()) return bad_type();
          const std::string s = e.get<std::string>();
          list.push_back(spec.type == ParamType::kPathList ? absolute_path(s, from_file) : s);
        }
        out = list;
        break;
      }
      case ParamType::kJson:
        out = json_text(v);
        break;
    }
    if (!check_value(spec, out, ptr, node_id)) return std::nullopt;
    return out;
  }

  // Paths written in a graph file are relative to that file's folder, those given by --set to
  // the current folder. Both are made absolute here, so that the graph recorded in run.json
  // names the same files wherever merge or --resume runs later.
  std::string absolute_path(const std::string& s, bool from_file) const {
    if (s.empty() || !fs::path(s).is_relative()) return s;
    std::error_code ec;
    const fs::path base = from_file ? fs::path(path_).parent_path() : fs::path();
    const fs::path p = fs::absolute(base / s, ec);
    return ec ? s : p.lexically_normal().string();
  }

  bool check_value(const ParamSpec& spec, const ParamValue& v, const std::string& ptr,
                   const std::string& node_id) {
    if (!spec.allowed.empty()) {
      if (auto* s = std::get_if<std::string>(&v); s && s->rfind('@', 0) != 0) {  // not @NODE.PARAM
        if (std::find(spec.allowed.begin(), spec.allowed.end(), *s) == spec.allowed.end()) {
          const std::string allowed = join(spec.allowed);
          issue("bad_param_value", ptr,
                "node '" + node_id + "': parameter '" + spec.name + "' is '" + *s +
                    "', allowed: " + allowed);
          return false;
        }
      }
    }
    double num = 0;
    bool is_num = false;
    if (auto* i = std::get_if<std::int64_t>(&v)) num = static_cast<double>(*i), is_num = true;
    if (auto* d = std::get_if<double>(&v)) num = *d, is_num = true;
    if (is_num && ((spec.min && num < *spec.min) || (spec.max && num > *spec.max))) {
      issue("bad_param_value", ptr,
            "node '" + node_id + "': parameter '" + spec.name + "' = " + param_value_to_string(v) +
                " is outside [" + (spec.min ? std::to_string(*spec.min) : "-inf") + ", " +
                (spec.max ? std::to_string(*spec.max) : "inf") + "]");
      return false;
    }
    return true;
  }

  // One stage's parameters from "PARAM=VALUE" strings, then defaults (resolve_params).
  Params resolve(const StageDescription& d, const std::vector<std::string>& sets,
                 std::vector<ConfigIssue>* issues) {
    std::map<std::string, ParamValue> values;
    for (const auto& set : sets) {
      const std::string ptr = "--set " + set;
      const auto eq = set.find('=');
      const std::string name = set.substr(0, eq);
      const ParamSpec* spec = d.param(name);
      if (eq == std::string::npos || !spec) {
        issue("unknown_param", ptr, "stage '" + d.kind + "' has no parameter '" + name + "'");
        continue;
      }
      if (auto v = convert(*spec, override_value(*spec, set.substr(eq + 1)), ptr, d.kind, false))
        values[name] = *v;
    }
    fill_defaults(d, values, [&](const ParamSpec& p) {
      issue("missing_param", "/params/" + p.name,
            "stage '" + d.kind + "' requires parameter '" + p.name + "'");
    });
    if (issues) *issues = issues_;
    return Params(values);
  }

  GraphLoad run(const std::string& text, const std::vector<std::string>& overrides) {
    GraphLoad result;
    json root;
    if (!parse_root(text, root)) {
      result.issues = issues_;
      return result;
    }
    GraphSpec g;
    g.path = path_;
    // Plugins first: the stages they bring are needed to validate the nodes.
    load_plugins(root, g);
    if (root.contains("max_in_flight")) {
      const json& m = root["max_in_flight"];
      if (!m.is_number_integer() || m.get<int>() < 1) {
        issue("bad_value", "/max_in_flight",
              "max_in_flight must be a positive integer, got " +
                  json_text(m));
      } else {
        g.max_in_flight = m.get<int>();
      }
    }
    std::map<std::string, std::size_t> index_of;  // id -> position in the file
    std::vector<NodeSpec> nodes;
    std::vector<const StageDescription*> descs;
    parse_nodes(root, nodes, descs, index_of);
    apply_overrides(overrides, nodes, descs, index_of);
    resolve_references(nodes, descs, index_of);
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (descs[i]) check_paths(nodes[i], *descs[i], "/nodes/" + std::to_string(i));
    }
    connect(parse_edges(root, nodes, index_of), nodes, index_of);
    std::vector<std::size_t> order = topo_order(nodes, index_of);
    const std::vector<std::size_t> roots = check_source(nodes, descs);
    if (order.size() == nodes.size()) {
      check_fields(nodes, descs, order, index_of);
      check_attributes(nodes, descs, order, index_of);
    }
    result.notes = notes_;
    if (!issues_.empty()) {
      result.issues = issues_;
      return result;
    }
    for (auto i : order) g.nodes.push_back(nodes[i]);
    g.source_id = nodes[roots[0]].id;
    for (const auto& n : g.nodes) {
      if (n.outputs.empty()) g.leaf_ids.push_back(n.id);
    }
    g.resolved_json = json_text(resolved(g), 2);
    result.graph = std::move(g);
    return result;
  }

 private:
  // JSON, an object, only known keys, the schema version. False when nothing more can be read.
  bool parse_root(const std::string& text, json& root) {
    try {
      root = json::parse(text);
    } catch (const json::exception& e) {  // syntax, or a number out of range (1e400)
      issue("bad_json", "", "graph " + path_ + " is not valid JSON: " + e.what());
      return false;
    }
    if (!root.is_object()) {
      issue("bad_type", "", "graph " + path_ + " must be a JSON object");
      return false;
    }
    static const std::set<std::string> kTopKeys = {
        "schema_version", "plugins", "max_in_flight", "nodes", "edges", "comment", "description"};
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (!kTopKeys.count(it.key())) {
        issue("unknown_key", "/" + escape_pointer(it.key()),
              "unknown key '" + it.key() +
                  "' (known: schema_version, plugins, max_in_flight, nodes, edges, comment)");
      }
    }
    if (!root.contains("schema_version")) {
      issue("missing_key", "/schema_version",
            "schema_version is required (this runtime reads version " +
                std::to_string(kSchemaVersion) + ")");
    } else if (!root["schema_version"].is_number_integer() ||
               root["schema_version"].get<int>() != kSchemaVersion) {
      issue("bad_schema_version", "/schema_version",
            "schema_version " +
                json_text(root["schema_version"]) +
                " is not supported (expected " + std::to_string(kSchemaVersion) + ")");
    }
    return true;
  }

  // The graph's own plugins (paths relative to the graph file's folder).
  void load_plugins(const json& root, GraphSpec& g) {
    if (!root.contains("plugins")) return;
    const json& pl = root["plugins"];
    if (!pl.is_array()) {
      issue("bad_type", "/plugins", "plugins must be an array of paths");
      return;
    }
    for (std::size_t i = 0; i < pl.size(); ++i) {
      const std::string ptr = "/plugins/" + std::to_string(i);
      if (!pl[i].is_string()) {
        issue("bad_type", ptr, "plugin entries must be strings (paths)");
        continue;
      }
      fs::path p = pl[i].get<std::string>();
      if (p.is_relative()) p = fs::absolute(fs::path(path_).parent_path() / p);
      try {
        g.plugins.push_back(registry_.load_plugin(p.lexically_normal().string()).path);
      } catch (const PluginError& e) {
        issue("plugin_refused", ptr, e.what());
        plugin_refused_ = true;
      }
    }
  }

  void parse_nodes(const json& root, std::vector<NodeSpec>& nodes,
                   std::vector<const StageDescription*>& descs,
                   std::map<std::string, std::size_t>& index_of) {
    if (!root.contains("nodes")) {
      issue("missing_key", "/nodes", "nodes is required: a non-empty array of stage nodes");
      return;
    }
    if (!root["nodes"].is_array() || root["nodes"].empty()) {
      issue("bad_type", "/nodes", "nodes must be a non-empty array");
      return;
    }
    const json& arr = root["nodes"];
    for (std::size_t i = 0; i < arr.size(); ++i) {
      const std::string ptr = "/nodes/" + std::to_string(i);
      nodes.push_back(parse_node(arr[i], ptr, &descs));
      const std::string& id = nodes.back().id;
      if (id.empty()) continue;
      if (index_of.count(id)) {
        issue("duplicate_node", ptr + "/id",
              "node id '" + id + "' is used twice (first at /nodes/" +
                  std::to_string(index_of[id]) + ")");
      } else {
        index_of[id] = i;
      }
    }
  }

  // The edges as written, or the nodes in file order when there are none.
  std::vector<std::pair<std::string, std::string>> parse_edges(
      const json& root, const std::vector<NodeSpec>& nodes,
      const std::map<std::string, std::size_t>& index_of) {
    std::vector<std::pair<std::string, std::string>> edges;
    if (!root.contains("edges")) {
      for (std::size_t i = 1; i < nodes.size(); ++i) {
        if (!nodes[i - 1].id.empty() && !nodes[i].id.empty())
          edges.emplace_back(nodes[i - 1].id, nodes[i].id);
      }
      return edges;
    }
    const json& e = root["edges"];
    if (!e.is_array()) {
      issue("bad_type", "/edges", "edges must be an array of [from, to] pairs");
      return edges;
    }
    for (std::size_t i = 0; i < e.size(); ++i) {
      const std::string ptr = "/edges/" + std::to_string(i);
      std::string from, to;
      if (e[i].is_array() && e[i].size() == 2 && e[i][0].is_string() && e[i][1].is_string()) {
        from = e[i][0].get<std::string>();
        to = e[i][1].get<std::string>();
      } else if (e[i].is_object() && e[i].contains("from") && e[i].contains("to") &&
                 e[i]["from"].is_string() && e[i]["to"].is_string() && e[i].size() == 2) {
        from = e[i]["from"].get<std::string>();
        to = e[i]["to"].get<std::string>();
      } else {
        issue("bad_type", ptr, "an edge is [\"from\", \"to\"] or {\"from\": ..., \"to\": ...}");
        continue;
      }
      bool ok = true;
      for (const auto& [end, which] : {std::pair{from, "/0"}, std::pair{to, "/1"}}) {
        if (index_of.count(end)) continue;
        issue("dangling_edge", ptr + which,
              "edge " + from + " -> " + to + ": no node has id '" + end + "'");
        ok = false;
      }
      if (ok) edges.emplace_back(from, to);
    }
    return edges;
  }

  // Records the edges on their nodes; a node takes its cases from one upstream node only.
  void connect(const std::vector<std::pair<std::string, std::string>>& edges,
               std::vector<NodeSpec>& nodes, const std::map<std::string, std::size_t>& index_of) {
    for (const auto& [from, to] : edges) {
      nodes[index_of.at(from)].outputs.push_back(to);
      nodes[index_of.at(to)].inputs.push_back(from);
    }
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (nodes[i].inputs.size() <= 1) continue;
      const std::string ins = join(nodes[i].inputs);
      issue("join_unsupported", "/nodes/" + std::to_string(i),
            "node '" + nodes[i].id + "' has several inputs (" + ins +
                "); each node takes its cases from exactly one upstream node");
    }
  }

  // Exactly one node without input, and it is a source stage; no other node is one.
  std::vector<std::size_t> check_source(const std::vector<NodeSpec>& nodes,
                                        const std::vector<const StageDescription*>& descs) {
    std::vector<std::size_t> roots;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (nodes[i].inputs.empty() && !nodes[i].id.empty()) roots.push_back(i);
    }
    if (!nodes.empty() && roots.size() != 1 && issues_.empty()) {
      const std::string names =
          join(roots, ", ", [&](std::size_t r) { return nodes[r].id; });
      issue("bad_topology", "/edges",
            roots.empty() ? "the graph has no source node (every node has an input)"
                          : "the graph has several nodes without input (" + names +
                                "); exactly one source node must start it");
    }
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const StageDescription* d = descs[i];
      if (!d) continue;
      const bool is_root = roots.size() == 1 && roots[0] == i;
      if (is_root && !d->is_source) {
        issue("not_a_source", "/nodes/" + std::to_string(i) + "/stage",
              "node '" + nodes[i].id + "' starts the graph but stage '" + d->kind +
                  "' is not a source (use a reader such as io.read_dataset)");
      } else if (!is_root && d->is_source) {
        issue("source_not_first", "/nodes/" + std::to_string(i) + "/stage",
              "node '" + nodes[i].id + "' uses source stage '" + d->kind +
                  "' but has an input; a source must start the graph");
      }
    }
    return roots;
  }

  // The graph as resolved (defaults filled in, overrides applied), for run.json.
  json resolved(const GraphSpec& g) const {
    json out = {{"schema_version", kSchemaVersion},
                {"max_in_flight", g.max_in_flight},
                {"plugins", g.plugins}};
    json jnodes = json::array(), jedges = json::array();
    for (const auto& n : g.nodes) {
      json params = json::object();
      const StageDescription* d = registry_.find(n.stage);
      for (const auto& [k, v] : n.params.values()) {
        const ParamSpec* spec = d ? d->param(k) : nullptr;
        params[k] = spec && spec->type == ParamType::kJson
                        ? json::parse(std::get<std::string>(v), nullptr, false)  // as written
                        : param_to_json(v);
      }
      json jn = {{"id", n.id}, {"stage", n.stage}, {"params", params}};
      jn["concurrency"] = n.concurrency == 0 ? json("parallel") : json(n.concurrency);
      if (!n.comment.empty()) jn["comment"] = n.comment;
      jnodes.push_back(jn);
      for (const auto& o : n.outputs) jedges.push_back({n.id, o});
    }
    out["nodes"] = jnodes;
    out["edges"] = jedges;
    return out;
  }

  NodeSpec parse_node(const json& jn, const std::string& ptr,
                      std::vector<const StageDescription*>* descs) {
    NodeSpec n;
    descs->push_back(nullptr);
    if (!jn.is_object()) {
      issue("bad_type", ptr, "a node must be an object with id and stage");
      return n;
    }
    parse_node_id(jn, ptr, n);
    const std::string label = n.id.empty() ? ptr : n.id;
    const StageDescription* d = parse_stage_kind(jn, ptr, label, n);
    if (!d) return n;
    descs->back() = d;
    n.concurrency = parse_concurrency(jn, ptr, label, *d);
    n.params = parse_params(jn, ptr, label, *d, n.id);
    return n;
  }

  // The node's keys, id and comment.
  void parse_node_id(const json& jn, const std::string& ptr, NodeSpec& n) {
    static const std::set<std::string> kNodeKeys = {"id", "stage", "params", "concurrency",
                                                    "comment"};
    for (auto it = jn.begin(); it != jn.end(); ++it) {
      if (!kNodeKeys.count(it.key())) {
        issue("unknown_key", ptr + "/" + escape_pointer(it.key()),
              "unknown key '" + it.key() +
                  "' in node (known: id, stage, params, concurrency, comment)");
      }
    }
    if (!jn.contains("id") || !jn["id"].is_string() || jn["id"].get<std::string>().empty()) {
      issue("missing_key", ptr + "/id", "every node needs a non-empty string id");
    } else {
      n.id = jn["id"].get<std::string>();
      if (n.id.find_first_of(".=/ ") != std::string::npos) {
        issue("bad_value", ptr + "/id",
              "node id '" + n.id + "' may not contain '.', '=', '/' or spaces");
      }
    }
    if (jn.contains("comment") && jn["comment"].is_string())
      n.comment = jn["comment"].get<std::string>();
  }

  // The stage kind's description, or nullptr (after an issue, unless its plugin was refused).
  const StageDescription* parse_stage_kind(const json& jn, const std::string& ptr,
                                           const std::string& label, NodeSpec& n) {
    if (!jn.contains("stage") || !jn["stage"].is_string()) {
      issue("missing_key", ptr + "/stage", "node '" + label + "' needs a stage kind");
      return nullptr;
    }
    n.stage = jn["stage"].get<std::string>();
    const StageDescription* d = registry_.find(n.stage);
    if (d || plugin_refused_) return d;  // a plugin's refusal is the one error to read
    std::vector<std::string> similar;
    for (const auto* k : registry_.kinds()) {
      if (k->kind.find(n.stage.substr(n.stage.find('.') + 1)) != std::string::npos)
        similar.push_back(k->kind);
    }
    const std::string near = join(similar);
    issue("unknown_stage", ptr + "/stage",
          "node '" + label + "': unknown stage kind '" + n.stage + "'" +
              (near.empty() ? std::string(" (see `spineparse stages`)")
                            : " (did you mean " + near + "?)"));
    return nullptr;
  }

  // 1 (serial), 0 (unlimited) or N, within what the stage allows.
  int parse_concurrency(const json& jn, const std::string& ptr, const std::string& label,
                        const StageDescription& d) {
    int concurrency = d.concurrency == Concurrency::kSerial ? 1 : 0;
    if (!jn.contains("concurrency")) return concurrency;
    const json& c = jn["concurrency"];
    if (c.is_string() && c.get<std::string>() == "serial") {
      concurrency = 1;
    } else if (c.is_string() && c.get<std::string>() == "parallel") {
      concurrency = 0;
    } else if (c.is_number_integer() && c.get<int>() >= 1) {
      concurrency = c.get<int>();
    } else {
      issue("bad_value", ptr + "/concurrency",
            "node '" + label + "': concurrency is \"serial\", \"parallel\" or a positive integer");
    }
    if (d.concurrency == Concurrency::kSerial && concurrency != 1) {
      issue("bad_concurrency", ptr + "/concurrency",
            "node '" + label + "': stage '" + d.kind + "' processes one case at a time");
      concurrency = 1;
    }
    return concurrency;
  }

  // The node's params, converted by their specs, and the defaults; a missing required one is
  // remembered (an override may still give it).
  Params parse_params(const json& jn, const std::string& ptr, const std::string& label,
                      const StageDescription& d, const std::string& id) {
    std::map<std::string, ParamValue> values;
    const json params = jn.contains("params") ? jn["params"] : json::object();
    if (!params.is_object()) {
      issue("bad_type", ptr + "/params", "node '" + label + "': params must be an object");
    } else {
      for (auto it = params.begin(); it != params.end(); ++it) {
        const ParamSpec* spec = d.param(it.key());
        const std::string pptr = ptr + "/params/" + escape_pointer(it.key());
        if (!spec) {
          issue("unknown_param", pptr,
                "node '" + label + "': stage '" + d.kind + "' has no parameter '" + it.key() +
                    "' (known: " + known_params(d) + ")");
          continue;
        }
        if (auto v = convert(*spec, it.value(), pptr, label, true)) values[spec->name] = *v;
      }
    }
    fill_defaults(d, values, [&](const ParamSpec& s) {
      missing_.push_back({id, s.name, ptr + "/params/" + escape_pointer(s.name), d.kind});
    });
    return Params(values);
  }

  void apply_overrides(const std::vector<std::string>& overrides, std::vector<NodeSpec>& nodes,
                       const std::vector<const StageDescription*>& descs,
                       const std::map<std::string, std::size_t>& index_of) {
    for (const auto& o : overrides) {
      const std::string ptr = "--set " + o;
      auto eq = o.find('=');
      auto dot = o.find('.');
      if (eq == std::string::npos || dot == std::string::npos || dot > eq) {
        issue("bad_override", ptr, "--set takes NODE.PARAM=VALUE");
        continue;
      }
      std::string node = o.substr(0, dot), param = o.substr(dot + 1, eq - dot - 1),
                  value = o.substr(eq + 1);
      auto it = index_of.find(node);
      if (it == index_of.end()) {
        issue("bad_override", ptr,
              "--set names node '" + node + "', which the graph does not have");
        continue;
      }
      const StageDescription* d = descs[it->second];
      if (!d) continue;
      const ParamSpec* spec = d->param(param);
      if (!spec) {
        issue("unknown_param", ptr,
              "--set: stage '" + d->kind + "' of node '" + node + "' has no parameter '" + param +
                  "'");
        continue;
      }
      const json v = override_value(*spec, value);
      if (auto pv = convert(*spec, v, ptr, node, false)) {
        nodes[it->second].params.set(param, *pv);
        overridden_.insert(node + "." + param);
        missing_.erase(
            std::remove_if(missing_.begin(), missing_.end(),
                           [&](const Missing& m) { return m.node == node && m.param == param; }),
            missing_.end());
      }
    }
    for (const auto& m : missing_) {
      issue("missing_param", m.pointer,
            "node '" + m.node + "': stage '" + m.kind + "' requires parameter '" + m.param +
                "' (set it in the graph or with --set " + m.node + "." + m.param + "=...)");
    }
  }

  // A string or path parameter "@NODE.PARAM" takes that node's resolved value (after --set), so
  // that one setting serves two nodes (io.reorient reads the coarse network's weights).
  void resolve_references(std::vector<NodeSpec>& nodes,
                          const std::vector<const StageDescription*>& descs,
                          const std::map<std::string, std::size_t>& index_of) {
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (!descs[i]) continue;
      for (const auto& spec : descs[i]->params) {
        if (spec.type != ParamType::kString && spec.type != ParamType::kPath) continue;
        if (!nodes[i].params.has(spec.name)) continue;
        const std::string ref = nodes[i].params.get_string(spec.name);
        if (ref.empty() || ref[0] != '@') continue;
        const std::string ptr = "/nodes/" + std::to_string(i) + "/params/" + spec.name;
        const auto dot = ref.find('.');
        const auto it =
            dot == std::string::npos ? index_of.end() : index_of.find(ref.substr(1, dot - 1));
        const std::string param = dot == std::string::npos ? "" : ref.substr(dot + 1);
        if (it == index_of.end() || !nodes[it->second].params.has(param) ||
            !std::holds_alternative<std::string>(nodes[it->second].params.values().at(param)) ||
            nodes[it->second].params.get_string(param).rfind('@', 0) == 0) {
          issue("bad_reference", ptr,
                "node '" + nodes[i].id + "': parameter '" + spec.name + "' is '" + ref +
                    "', which names no string parameter of another node (write @NODE.PARAM)");
          continue;
        }
        const ParamValue value = nodes[it->second].params.get_string(param);
        if (check_value(spec, value, ptr, nodes[i].id)) nodes[i].params.set(spec.name, value);
      }
    }
  }

  // Input paths that do not exist, resolved as the stage will see them (check_paths).
  void check_paths(const NodeSpec& n, const StageDescription& d, const std::string& ptr) {
    for (const auto& spec : d.params) {
      if (!spec.must_exist || !n.params.has(spec.name)) continue;
      if (!spec.exists_unless.empty() && n.params.has(spec.exists_unless) &&
          n.params.get_bool(spec.exists_unless))
        continue;
      const std::string& value = n.params.get_string(spec.name);
      std::error_code ec;
      if (value.empty() || fs::exists(value, ec)) continue;
      const bool from_set = overridden_.count(n.id + "." + spec.name) != 0;
      const std::string base =
          from_set
              ? "given by --set: relative to the current folder " + fs::current_path(ec).string()
              : "relative paths in a graph resolve against its folder " +
                    fs::absolute(fs::path(path_).parent_path(), ec).lexically_normal().string();
      issue("missing_path",
            from_set ? "--set " + n.id + "." + spec.name : ptr + "/params/" + spec.name,
            "node '" + n.id + "': parameter '" + spec.name + "' names " + value +
                ", which does not exist (" + base + ")");
      issues_.back().node = n.id;
      issues_.back().param = spec.name;
    }
  }

  std::vector<std::size_t> topo_order(const std::vector<NodeSpec>& nodes,
                                      const std::map<std::string, std::size_t>& index_of) {
    std::vector<int> indeg(nodes.size(), 0);
    for (std::size_t i = 0; i < nodes.size(); ++i)
      indeg[i] = static_cast<int>(nodes[i].inputs.size());
    std::vector<std::size_t> order, ready;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (indeg[i] == 0) ready.push_back(i);
    }
    while (!ready.empty()) {
      std::size_t i = ready.front();
      ready.erase(ready.begin());
      order.push_back(i);
      for (const auto& o : nodes[i].outputs) {
        std::size_t j = index_of.at(o);
        if (--indeg[j] == 0) ready.push_back(j);
      }
    }
    if (order.size() != nodes.size()) {
      std::vector<std::string> cycle;
      for (std::size_t i = 0; i < nodes.size(); ++i) {
        if (indeg[i] > 0) cycle.push_back(nodes[i].id);
      }
      issue("cycle", "/edges", "the edges form a cycle through nodes: " + join(cycle));
    }
    return order;
  }

  void check_fields(const std::vector<NodeSpec>& nodes,
                    const std::vector<const StageDescription*>& descs,
                    const std::vector<std::size_t>& order,
                    const std::map<std::string, std::size_t>& index_of) {
    std::vector<std::set<std::string>> available(nodes.size());
    // Below a node whose stage is unknown (already reported) the fields are unknown too.
    std::vector<bool> unknown(nodes.size(), false);
    for (auto i : order) {
      const bool upstream_unknown =
          !nodes[i].inputs.empty() && unknown[index_of.at(nodes[i].inputs[0])];
      if (!descs[i] || upstream_unknown) {
        unknown[i] = true;
        continue;
      }
      std::set<std::string> have;
      if (!nodes[i].inputs.empty()) have = available[index_of.at(nodes[i].inputs[0])];
      auto reads = descs[i]->reads;
      auto writes = descs[i]->writes;
      if (descs[i]->fields_for) {
        try {
          std::tie(reads, writes) = descs[i]->fields_for(nodes[i].params);
        } catch (const std::exception& e) {  // parameters the stage cannot read its fields from
          issue("bad_param_value", "/nodes/" + std::to_string(i) + "/params",
                "node '" + nodes[i].id + "' (stage " + descs[i]->kind + "): " + e.what());
          continue;
        }
      }
      for (const auto& r : reads) {
        if (r.optional || have.count(r.name)) continue;
        const std::string up = join(have);
        issue("missing_field", "/nodes/" + std::to_string(i),
              "node '" + nodes[i].id + "' (stage " + descs[i]->kind + ") reads case field '" +
                  r.name + "', which no upstream stage writes (upstream writes: " +
                  (up.empty() ? "nothing" : up) + ")");
      }
      for (const auto& w : writes) have.insert(w.name);
      for (const auto& c : descs[i]->consumes) have.erase(c);
      available[i] = have;
    }
  }

  // A node's declared attribute uses for its params; false (with an issue) when the stage cannot
  // name them for these params.
  bool attribute_uses(const NodeSpec& n, std::size_t i, const StageAttributes& a,
                      std::vector<AttributeUse>& reads, std::vector<AttributeUse>& writes,
                      bool report = true) {
    reads = a.reads;
    writes = a.writes;
    if (!a.for_params) return true;
    try {
      a.for_params(n.params, reads, writes);
      return true;
    } catch (const std::exception& e) {
      if (report)
        issue("bad_param_value", "/nodes/" + std::to_string(i) + "/params",
              "node '" + n.id + "' (stage " + n.stage + "): " + e.what());
      return false;
    }
  }

  // Why no writer of `name` runs before node i: a node that writes it elsewhere in the graph, or
  // the loaded stage kinds that write it.
  std::string writers_of(const std::string& name, std::size_t i,
                         const std::vector<NodeSpec>& nodes) {
    for (std::size_t j = 0; j < nodes.size(); ++j) {
      const StageAttributes* a = j == i ? nullptr : registry_.attributes(nodes[j].stage);
      std::vector<AttributeUse> reads, writes;
      if (!a || !attribute_uses(nodes[j], j, *a, reads, writes, false)) continue;
      for (const auto& w : writes)
        if (w.name == name)
          return "node '" + nodes[j].id + "' (stage " + nodes[j].stage +
                 ") writes it but does not run before it";
    }
    std::vector<std::string> kinds;
    for (const auto* d : registry_.kinds()) {
      const StageAttributes* a = registry_.attributes(d->kind);
      if (!a) continue;
      for (const auto& w : a->writes)
        if (w.name == name) kinds.push_back(d->kind);
    }
    return kinds.empty() ? "no loaded stage writes it"
                         : "add a node of stage " + join(kinds, " or ") + " before it";
  }

  // Attributes and typed values as check_fields checks fields: a read that is not optional
  // needs a writer upstream. Below a kind that declares none (built before ABI 2.7) or writes
  // any, every read passes; such kinds get a note.
  void check_attributes(const std::vector<NodeSpec>& nodes,
                        const std::vector<const StageDescription*>& descs,
                        const std::vector<std::size_t>& order,
                        const std::map<std::string, std::size_t>& index_of) {
    std::vector<std::set<std::string>> available(nodes.size());
    std::vector<bool> open(nodes.size(), false);  // anything may have been written above
    for (auto i : order) {
      const std::size_t up = nodes[i].inputs.empty() ? i : index_of.at(nodes[i].inputs[0]);
      std::set<std::string> have = up == i ? std::set<std::string>{} : available[up];
      bool any = up != i && open[up];
      const StageAttributes* a = descs[i] ? registry_.attributes(nodes[i].stage) : nullptr;
      std::vector<AttributeUse> reads, writes;
      if (!descs[i] || !a || !attribute_uses(nodes[i], i, *a, reads, writes)) {
        if (descs[i] && !a)
          notes_.push_back("node '" + nodes[i].id + "' (stage " + nodes[i].stage + ", plugin " +
                           registry_.plugin_of(nodes[i].stage) + " built for ABI 2." +
                           std::to_string(registry_.abi_minor_of(nodes[i].stage)) +
                           ") declares no case attributes: what it reads is not checked, and "
                           "the nodes below it may read any attribute");
        available[i] = have;
        open[i] = true;
        continue;
      }
      if (descs[i]->is_source)
        for (const auto& w : writes) have.insert(w.name);  // its own seeds' attributes
      for (const auto& r : reads) {
        if (r.optional || any || have.count(r.name)) continue;
        issue("missing_attribute", "/nodes/" + std::to_string(i),
              "node '" + nodes[i].id + "' (stage " + nodes[i].stage + ") reads case " +
                  (r.type.empty() ? "attribute" : "value") + " '" + r.name + "'" +
                  (r.type.empty() ? "" : " (" + r.type + ")") +
                  ", which no upstream node writes: " + writers_of(r.name, i, nodes));
      }
      for (const auto& w : writes) have.insert(w.name);
      available[i] = std::move(have);
      open[i] = any || a->writes_any;
    }
  }

  struct Missing {
    std::string node, param, pointer, kind;
  };
  Registry& registry_;
  std::string path_;
  std::vector<ConfigIssue> issues_;
  std::vector<std::string> notes_;
  std::vector<Missing> missing_;
  std::set<std::string> overridden_;  // "node.param" given by --set
  bool plugin_refused_ = false;       // a plugin the graph lists did not load
};

}  // namespace

GraphLoad load_graph_text(const std::string& text, const std::string& path, Registry& registry,
                          const std::vector<std::string>& overrides) {
  return Validator(registry, path).run(text, overrides);
}

Params resolve_params(const StageDescription& description, const std::vector<std::string>& sets,
                      std::vector<ConfigIssue>* issues) {
  Registry none;
  return Validator(none, "").resolve(description, sets, issues);
}

GraphLoad load_graph_file(const std::string& path, Registry& registry,
                          const std::vector<std::string>& overrides) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const std::exception& e) {
    GraphLoad r;
    r.issues.push_back({"unreadable", "", e.what()});
    return r;
  }
  return load_graph_text(text, path, registry, overrides);
}

}  // namespace spineparse
