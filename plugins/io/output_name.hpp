// File names of the io writers: "{id}" in a name template is the case id.
#pragma once

#include <string>

namespace spineparse::io {

// Replaced left to right, never rescanning what was put in (an id may itself contain "{id}").
inline std::string with_case_id(std::string name, const std::string& id) {
  for (std::size_t p = 0; (p = name.find("{id}", p)) != std::string::npos; p += id.size())
    name.replace(p, 4, id);
  return name;
}

}  // namespace spineparse::io
