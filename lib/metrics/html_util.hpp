// Helpers of the self-contained HTML pages (report.html, the viewer pages).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <map>
#include <string>

namespace spineparse::metrics {

std::string base64(const std::string& bytes);
// JSON text safe inside a <script> element ("</" never appears in it).
std::string script_json(const nlohmann::json& j);
// The template with each "@KEY@" of `values` replaced, in one pass: what is put in is never
// scanned again (a case id that reads "@RUN@" stays text). Other '@' are kept.
std::string fill_template(const std::string& text, const std::map<std::string, std::string>& values);
// Text safe inside HTML element content and attribute values.
std::string html_escape(const std::string& text);

}  // namespace spineparse::metrics
