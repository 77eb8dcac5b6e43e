// C-STORE of result files to a destination AE (DCMTK's DcmSCU), TLS when configured.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "receiver.hpp"  // TlsFiles

namespace spineparse::serve {

struct Destination {
  std::string aet, host;
  int port = 0;
  std::string text;  // as given: AET@HOST:PORT
};

// Parses AET@HOST:PORT; nullopt with *why set when it is not one.
std::optional<Destination> parse_destination(const std::string& text, std::string* why);

// Sends the files in one association, each under its own SOP class. Returns one entry per file:
// empty when the destination answered success (or a warning), else why it did not take it.
// When the association cannot be made, every entry says why.
std::vector<std::string> send_files(const std::string& our_aet, const Destination& to,
                                    const std::vector<std::string>& files, const TlsFiles& tls);

}  // namespace spineparse::serve
