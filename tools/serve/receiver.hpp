// The node's storage SCP (DCMTK's DcmSCPPool): accepts MR Image Storage, Enhanced MR Image
// Storage and Verification in the usual transfer syntaxes (anything else is refused at
// association time), writes each instance atomically into SPOOL/<StudyUID>/<SeriesUID>/<SOPUID>.dcm,
// records it in the journal and answers the C-STORE at once.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace spineparse::serve {

class Journal;

struct TlsFiles {
  std::string key, cert, ca;  // PEM files; all empty: no TLS
  bool enabled() const { return !cert.empty(); }
};

struct ReceiverOptions {
  std::string aet = "SPINEPARSE";  // the called AE title must be this one
  int port = 11112;
  std::string spool;
  std::vector<std::string> allow;  // AET or AET@HOST; empty: any calling AE
  int max_associations = 8;
  double max_spool_bytes = 0;  // 0: no limit
  TlsFiles tls;
};

using LogFn = std::function<void(const std::string&)>;

class Receiver {
 public:
  Receiver(ReceiverOptions options, Journal& journal, LogFn log);
  ~Receiver();
  // Binds the port (throws std::runtime_error with the reason when it cannot, or when the TLS
  // files do not load), then serves until stop(); the associations in progress finish first.
  void run();
  void stop();
  // Received instances of this many bytes left the spool (--keep results).
  void forget_bytes(long long bytes);

  struct State;

 private:
  std::unique_ptr<State> state_;
};

// The bytes of the received instances under a spool folder (its study folders).
long long spool_size(const std::string& spool);

}  // namespace spineparse::serve
