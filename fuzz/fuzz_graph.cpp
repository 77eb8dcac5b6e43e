// libFuzzer: graph JSON parsing and validation. Inputs naming shared libraries are skipped (the
// validator would load them).
#include <cstdint>
#include <string>

#include "fuzz_stages.hpp"
#include "spineparse/graph.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (text.find(".so") != std::string::npos) return 0;
  spineparse::Registry registry;
  spineparse::fuzz::register_fuzz_stages(registry);
  auto g = spineparse::load_graph_text(text, "/nonexistent/fuzz.json", registry);
  (void)g.ok();
  return 0;
}
