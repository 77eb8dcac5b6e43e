// Graph files: the JSON blueprint of a run, parsed into plain structs and validated completely
// before anything executes. Every problem is reported at once with a JSON Pointer.
//
// {
//   "schema_version": 1,
//   "plugins": ["relative/or/absolute/libspineparse_x.so"],     (optional)
//   "max_in_flight": 4,                                         (optional, default 4)
//   "nodes": [
//     {"id": "read", "stage": "io.read_dataset", "params": {...}, "comment": "..."},
//     {"id": "norm", "stage": "io.normalise", "concurrency": "parallel"}
//   ],
//   "edges": [["read", "norm"]]          (optional: without it the nodes form a chain in order)
// }
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "spineparse/params.hpp"
#include "spineparse/registry.hpp"

namespace spineparse {

struct ConfigIssue {
  std::string code;     // machine-readable: "unknown_stage", "missing_param", ...
  std::string pointer;  // JSON Pointer into the graph file, e.g. "/nodes/3/params/device"
  std::string message;
  std::string node;   // the node it concerns, where one does (else "")
  std::string param;  // and its parameter, where one does
  std::string to_string() const;
};

struct NodeSpec {
  std::string id;
  std::string stage;
  std::string comment;
  Params params;
  int concurrency = 1;               // 0 = unlimited
  std::vector<std::string> inputs;   // predecessor ids (at most one)
  std::vector<std::string> outputs;  // successor ids
};

struct GraphSpec {
  int schema_version = 1;
  std::string path;                  // the file it came from
  std::vector<std::string> plugins;  // resolved absolute paths
  int max_in_flight = 4;
  std::vector<NodeSpec> nodes;  // topological order, source first
  std::string source_id;
  std::vector<std::string> leaf_ids;
  // The graph as resolved (defaults filled in, overrides applied), as JSON text for run.json.
  std::string resolved_json;

  const NodeSpec* node(const std::string& id) const;
};

struct GraphLoad {
  std::optional<GraphSpec> graph;
  std::vector<ConfigIssue> issues;
  // What validation could not check (nodes of plugins built before a contract was declared).
  std::vector<std::string> notes;
  bool ok() const { return issues.empty() && graph.has_value(); }
};

constexpr int kSchemaVersion = 1;

// Parses and validates `text` (the content of `path`). Plugins the graph lists are loaded into
// `registry` (relative paths resolve against the graph file's folder). `overrides` are
// "NODE.PARAM=VALUE" strings from --set, typed by the parameter's declared type.
GraphLoad load_graph_text(const std::string& text, const std::string& path, Registry& registry,
                          const std::vector<std::string>& overrides = {});
GraphLoad load_graph_file(const std::string& path, Registry& registry,
                          const std::vector<std::string>& overrides = {});

// One stage's parameters resolved as a graph node's are: "PARAM=VALUE" strings typed by their
// declared types (as --set NODE.PARAM=VALUE), then the defaults. Problems (unknown parameters,
// bad values, required ones missing) go to `issues`; the returned Params then lack those.
Params resolve_params(const StageDescription& description, const std::vector<std::string>& sets,
                      std::vector<ConfigIssue>* issues);

}  // namespace spineparse
