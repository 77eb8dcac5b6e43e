#include "spineparse/graph_draft.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "param_json.hpp"
#include "spineparse/files.hpp"

namespace spineparse {

using nlohmann::json;

struct GraphDraft::Impl {
  json root;
  json* node(const std::string& id) {
    for (auto& n : root["nodes"])
      if (n["id"] == id) return &n;
    return nullptr;
  }
};

GraphDraft GraphDraft::from_text(const std::string& text, const std::string& path) {
  GraphDraft d;
  d.path_ = path;
  d.impl_ = std::make_unique<Impl>();
  try {
    d.impl_->root = json::parse(text);
  } catch (const json::exception& e) {
    throw std::runtime_error(path + ": not JSON: " + e.what());
  }
  const json& r = d.impl_->root;
  if (!r.is_object() || !r.contains("nodes") || !r["nodes"].is_array())
    throw std::runtime_error(path + ": not a graph (no \"nodes\" array)");
  for (const auto& n : r["nodes"])
    if (!n.is_object() || !n.contains("id") || !n["id"].is_string() || !n.contains("stage") ||
        !n["stage"].is_string())
      throw std::runtime_error(path + ": every node needs a string \"id\" and \"stage\"");
  return d;
}

GraphDraft GraphDraft::from_file(const std::string& path) {
  return from_text(read_file(path), path);
}

GraphDraft::GraphDraft(const GraphDraft& other)
    : impl_(std::make_unique<Impl>(*other.impl_)), path_(other.path_) {}
GraphDraft& GraphDraft::operator=(const GraphDraft& other) {
  impl_ = std::make_unique<Impl>(*other.impl_);
  path_ = other.path_;
  return *this;
}
GraphDraft::~GraphDraft() = default;

std::vector<std::string> GraphDraft::node_ids() const {
  std::vector<std::string> ids;
  for (const auto& n : impl_->root["nodes"]) ids.push_back(n["id"].get<std::string>());
  return ids;
}

bool GraphDraft::has_node(const std::string& id) const { return impl_->node(id) != nullptr; }

std::string GraphDraft::stage_of(const std::string& id) const {
  const json* n = impl_->node(id);
  return n ? (*n)["stage"].get<std::string>() : "";
}

std::vector<std::string> GraphDraft::nodes_of_stage(const std::string& kind) const {
  std::vector<std::string> ids;
  for (const auto& n : impl_->root["nodes"])
    if (n["stage"] == kind) ids.push_back(n["id"].get<std::string>());
  return ids;
}

void GraphDraft::set(const std::string& node, const std::string& param, const ParamValue& value) {
  json* n = impl_->node(node);
  if (!n) throw std::invalid_argument(path_ + ": the graph has no node '" + node + "'");
  if (!n->contains("params") || !(*n)["params"].is_object()) (*n)["params"] = json::object();
  (*n)["params"][param] = param_to_json(value);
}

std::vector<std::string> GraphDraft::set_where_declared(const Registry& registry,
                                                        const std::string& param,
                                                        const ParamValue& value) {
  std::vector<std::string> ids;
  for (const auto& id : node_ids()) {
    const StageDescription* d = registry.find(stage_of(id));
    if (!d || !d->param(param)) continue;
    set(id, param, value);
    ids.push_back(id);
  }
  return ids;
}

std::string GraphDraft::text() const { return impl_->root.dump(2); }

GraphLoad load_graph(const GraphDraft& draft, Registry& registry,
                     const std::vector<std::string>& overrides) {
  return load_graph_text(draft.text(), draft.path(), registry, overrides);
}

}  // namespace spineparse
