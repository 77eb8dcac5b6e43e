// A graph as plain data that tools edit before it is validated: the graph file's nodes with their
// stage kinds and the parameters the file gives, typed setters, and lookups by stage kind (so a
// tool finds "the fine network" by what it is, not by a node id of one graph file). Nothing is
// checked until load_graph(draft, ...), which validates it exactly as a graph file (command-line
// --set overrides still apply on top, and win).
//
//   GraphDraft g = GraphDraft::from_file("graphs/spineparsenet.json");
//   for (const auto& id : g.nodes_of_stage("fine.resunet"))
//     g.set<ResUNetOptions>(id, &ResUNetOptions::weights, path);  // the key the options declare
//   GraphLoad loaded = load_graph(g, registry, user_sets);
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "spineparse/graph.hpp"
#include "spineparse/param_set.hpp"
#include "spineparse/params.hpp"

namespace spineparse {

class GraphDraft {
 public:
  // Throws std::runtime_error naming the file when it cannot be read or is not a JSON object
  // with a "nodes" array of objects with an "id" and a "stage".
  static GraphDraft from_file(const std::string& path);
  static GraphDraft from_text(const std::string& text, const std::string& path);
  GraphDraft(const GraphDraft& other);
  GraphDraft& operator=(const GraphDraft& other);
  ~GraphDraft();

  const std::string& path() const { return path_; }
  std::vector<std::string> node_ids() const;  // in file order
  bool has_node(const std::string& id) const;
  std::string stage_of(const std::string& id) const;  // "" for an unknown node
  // Ids of the nodes running stage `kind`, in file order.
  std::vector<std::string> nodes_of_stage(const std::string& kind) const;
  // Sets a parameter of a node (replacing what the file gave). Throws std::invalid_argument for
  // a node the draft does not have.
  void set(const std::string& node, const std::string& param, const ParamValue& value);
  // The same, typed: the parameter is the one options struct O declares for `member`.
  template <class O, class M, class C, class V>
  void set(const std::string& node, M C::*member, V&& value) {
    set(node, params_of<O>().name_of(member), ParamSet<O>::value(M(std::forward<V>(value))));
  }
  // Sets `param` on every node whose stage (as `registry` knows it) declares it, e.g. "device";
  // returns their ids.
  std::vector<std::string> set_where_declared(const Registry& registry, const std::string& param,
                                              const ParamValue& value);
  // The draft as graph JSON text.
  std::string text() const;

 private:
  GraphDraft() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

// Validates and resolves a draft as load_graph_file does the file (relative paths against the
// draft's path).
GraphLoad load_graph(const GraphDraft& draft, Registry& registry,
                     const std::vector<std::string>& overrides = {});

}  // namespace spineparse
