#include "metrics/html_util.hpp"
#include "spineparse/text.hpp"

#include <nlohmann/json.hpp>

namespace spineparse::metrics {

std::string base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += t[v & 63];
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const unsigned v =
        (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string script_json(const nlohmann::json& j) {
  std::string s = json_text(j);
  for (std::size_t p = 0; (p = s.find("</", p)) != std::string::npos; p += 3)
    s.replace(p, 2, "<\\/");
  return s;
}


std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string fill_template(const std::string& text,
                          const std::map<std::string, std::string>& values) {
  std::string html;
  const std::string& t = text;
  for (std::size_t p = 0; p < t.size();) {
    const std::size_t q = t.find('@', p);
    if (q == std::string::npos) {
      html.append(t, p, std::string::npos);
      break;
    }
    html.append(t, p, q - p);
    const std::size_t e = t.find('@', q + 1);
    const auto it = e == std::string::npos ? values.end() : values.find(t.substr(q, e - q + 1));
    if (it == values.end()) {
      html += '@';
      p = q + 1;
    } else {
      html += it->second;
      p = e + 1;
    }
  }
  return html;
}

}  // namespace spineparse::metrics
