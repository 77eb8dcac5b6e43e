// spineparse serve: the DICOM node. A receiver thread stores instances in the spool; this loop
// marks series complete after --idle seconds without an instance, runs each complete series
// through the graph (one run per series, oldest first, --parallel at once) into
// OUTPUT/<StudyUID>/<SeriesUID>/, and a sender thread sends each series' DICOM-SEG and SR to every
// destination, retrying with backoff. The journal (journal.hpp) makes all of it resumable.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "receiver.hpp"

namespace spineparse {
struct GraphSpec;
class Registry;
}  // namespace spineparse

namespace spineparse::serve {

struct NodeOptions {
  ReceiverOptions receiver;
  std::string output;
  std::vector<std::string> send_to;  // AET@HOST:PORT
  double idle_s = 5.0;
  bool by_study = false;     // --group study
  std::string keep = "all";  // all | results: received instances deleted once the results are sent
  int threads = 0;           // the cores all runs share (0: every core)
  int parallel = 2;          // series run at once, each on threads / parallel cores
  double max_backoff_s = 60.0;
};

// The journal's path in a spool folder.
std::string journal_path(const std::string& spool);

// Serves until *stop becomes non-zero (SIGTERM, SIGINT): then no association is accepted, the
// series running finishes, results due are sent once more, and it returns 0. Returns non-zero
// (after saying why on stderr) when the node cannot start.
int serve(const GraphSpec& graph, const Registry& registry, const NodeOptions& options,
          const std::atomic<int>& stop);

// `serve --status`: the journal's series and sends, as a table on stdout. Returns non-zero when
// the spool has no journal.
int print_status(const std::string& spool);

}  // namespace spineparse::serve
