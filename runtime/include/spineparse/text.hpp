// Small text helpers shared by the runtime, the libraries and the tools: lists joined for
// messages, and JSON written as every record file of spineparse writes it. Header only, no
// dependencies (json_text works on any nlohmann::basic_json without including it).
#pragma once

#include <string>

namespace spineparse {

// The items' texts joined by `sep`; `text(item)` gives each one's (the item itself by default):
// join(std::vector<std::string>{"a", "b"}) == "a, b".
template <class Range, class Text>
std::string join(const Range& items, const std::string& sep, Text text) {
  std::string out;
  bool first = true;
  for (const auto& item : items) {
    if (!first) out += sep;
    out += text(item);
    first = false;
  }
  return out;
}
template <class Range>
std::string join(const Range& items, const std::string& sep = ", ") {
  return join(items, sep, [](const auto& item) -> std::string { return item; });
}

// A JSON value as text, invalid UTF-8 in its strings replaced (U+FFFD) instead of throwing: a
// case name or a DICOM field from a foreign file never stops a record from being written.
// indent -1: one line.
template <class Json>
std::string json_text(const Json& j, int indent = -1) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

}  // namespace spineparse
