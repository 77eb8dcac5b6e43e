// The DICOM node's durable journal (SQLite, SPOOL/journal.sqlite): every series it received and
// its state, and every result it must send with each attempt. A restart after a crash or kill -9
// reads it to pick up where the node stopped (Journal::recover).
//
// A series moves receiving -> complete -> running -> done -> sent (or failed or skipped, with its
// reason);
// a late instance of a series that is no longer receiving makes it receiving again, to be run
// again with all its instances. A send (one result file to one destination) is pending until the
// destination answered success, retried with backoff, never dropped.
//
// Thread-safe: one connection under a mutex; each change is one transaction (WAL, synchronous
// NORMAL: a committed change survives the process being killed).
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace spineparse::serve {

// Now, in Unix seconds: the journal's clock.
double unix_now();

struct SeriesRow {
  std::string study_uid;
  std::string series_uid;
  std::string state;  // receiving, complete, running, done, sent, failed, skipped
  int instances = 0;
  double first_at = 0.0;  // Unix seconds
  double last_at = 0.0;   // the last instance's arrival
  std::string calling_ae;
  std::string reason;  // why it failed
  double run_s = 0.0;  // seconds its run took
  double done_at = 0.0;
};

struct SendRow {
  long long id = 0;
  std::string series_uid;
  std::string destination;  // AET@HOST:PORT
  std::string file;
  std::string state;  // pending, sent
  int attempts = 0;
  double next_at = 0.0;
  std::string last_error;
};

class Journal {
 public:
  // Opens (creating) the journal. Throws std::runtime_error naming the file when it cannot.
  explicit Journal(const std::string& path);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // One instance stored: counts it once per SOP Instance UID and makes its series receiving.
  // Returns true when the series was not receiving before (a new series, or a late instance).
  bool add_instance(const std::string& study_uid, const std::string& series_uid,
                    const std::string& sop_uid, const std::string& calling_ae, double now);

  // An instance of the series refused (the spool was full): the series fails when it completes,
  // unless a later instance is stored (the sender sent it again).
  void refuse_instance(const std::string& study_uid, const std::string& series_uid,
                       const std::string& calling_ae, double now);

  // Series receiving whose last instance (grouped by study: the study's last instance) is at
  // least idle_s old become complete, or failed when instances of them were refused. Returns them.
  std::vector<SeriesRow> complete_idle(double now, double idle_s, bool by_study);

  // The oldest complete series, marked running; none when there is none.
  std::optional<SeriesRow> start_next();
  // A run ended: done with its result files queued for every destination (one transaction), or
  // failed with its reason. A series that received instances meanwhile stays receiving.
  void finish(const std::string& series_uid, double run_s, double now,
              const std::vector<std::string>& files, const std::vector<std::string>& destinations);
  // state "failed", or "skipped" (the graph's reader passed it by: a localizer, a series the
  // series filter does not match).
  void fail(const std::string& series_uid, const std::string& reason, double run_s, double now,
            const std::string& state = "failed");

  // Sends due at `now`, oldest first.
  std::vector<SendRow> due_sends(double now);
  std::size_t pending_sends();
  // A send succeeded: returns true when it was its series' last pending one (the series is sent).
  bool send_succeeded(long long id);
  // A send failed: retried after a backoff of 2^attempts seconds, at most max_backoff_s.
  void send_failed(long long id, const std::string& error, double now, double max_backoff_s);

  // After a restart: series left running are complete again (their run is redone); returns them.
  std::vector<std::string> recover();

  std::vector<SeriesRow> series();
  std::optional<SeriesRow> series(const std::string& series_uid);
  std::vector<SendRow> sends();

 private:
  void exec(const char* sql);
  // The series receiving: created, or its counts and time moved on. `refused`: one more refused
  // instance; otherwise the refusals are forgotten (the sender sent again). Under mutex_.
  void upsert_receiving(const std::string& study_uid, const std::string& series_uid,
                        const std::string& calling_ae, double now, long long instances,
                        bool refused);
  sqlite3* db_ = nullptr;
  std::string path_;
  std::mutex mutex_;
};

}  // namespace spineparse::serve
