// libFuzzer: --set NODE.PARAM=VALUE parsing and typing: each input line is one --set, applied to
// a valid graph whose stages have parameters of every type.
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_stages.hpp"
#include "spineparse/graph.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const char* kGraph = R"({"schema_version": 1, "nodes": [
    {"id": "read", "stage": "fz.source"},
    {"id": "filter", "stage": "fz.filter"},
    {"id": "write", "stage": "fz.sink", "params": {"field": "labels"}}]})";
  std::vector<std::string> sets;
  std::istringstream lines(std::string(reinterpret_cast<const char*>(data), size));
  for (std::string line; std::getline(lines, line);) sets.push_back(line);
  spineparse::Registry registry;
  spineparse::fuzz::register_fuzz_stages(registry);
  auto g = spineparse::load_graph_text(kGraph, "/nonexistent/fuzz.json", registry, sets);
  (void)g.ok();
  return 0;
}
