// DICOM UIDs as the node uses them in file and folder names.
#pragma once

#include <string>

namespace spineparse::serve {

// A UID as the standard allows it (digits and dots, 1 to 64 characters, no empty component):
// safe as a file or folder name.
inline bool is_uid(const std::string& s) {
  if (s.empty() || s.size() > 64 || s.front() == '.' || s.back() == '.') return false;
  char prev = 0;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || c == '.')) return false;
    if (c == '.' && prev == '.') return false;
    prev = c;
  }
  return true;
}

}  // namespace spineparse::serve
