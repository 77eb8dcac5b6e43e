#include "journal.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <stdexcept>
#include <utility>

namespace spineparse::serve {
namespace {

const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS series(
  series_uid TEXT PRIMARY KEY, study_uid TEXT NOT NULL, state TEXT NOT NULL,
  instances INTEGER NOT NULL DEFAULT 0, first_at REAL NOT NULL, last_at REAL NOT NULL,
  calling_ae TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '',
  run_s REAL NOT NULL DEFAULT 0, done_at REAL NOT NULL DEFAULT 0,
  refused INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS instances(
  sop_uid TEXT PRIMARY KEY, series_uid TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sends(
  id INTEGER PRIMARY KEY, series_uid TEXT NOT NULL, destination TEXT NOT NULL, file TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
  next_at REAL NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '',
  UNIQUE(series_uid, destination, file));
)";

// A prepared statement with positional binding; finalised on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("journal: ") + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, double v) {
    sqlite3_bind_double(s_, i, v);
    return *this;
  }
  Stmt& bind(int i, long long v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  // Steps once: true while a row is there.
  bool step() {
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw std::runtime_error(std::string("journal: ") + sqlite3_errmsg(db_));
  }
  void run() {
    while (step()) {
    }
  }
  std::string text(int c) const {
    const auto* p = sqlite3_column_text(s_, c);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
  double real(int c) const { return sqlite3_column_double(s_, c); }
  long long integer(int c) const { return sqlite3_column_int64(s_, c); }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

const char* kSeriesColumns =
    "SELECT study_uid, series_uid, state, instances, first_at, last_at, calling_ae, reason, run_s, "
    "done_at FROM series ";

SeriesRow series_row(const Stmt& s) {
  return {s.text(0), s.text(1), s.text(2), static_cast<int>(s.integer(3)), s.real(4), s.real(5),
          s.text(6), s.text(7), s.real(8), s.real(9)};
}

const char* kSendColumns =
    "SELECT id, series_uid, destination, file, state, attempts, next_at, last_error FROM sends ";

SendRow send_row(const Stmt& s) {
  return {s.integer(0), s.text(1), s.text(2),  s.text(3),
          s.text(4),    static_cast<int>(s.integer(5)), s.real(6), s.text(7)};
}

// Every row a query without parameters returns, each made by `make`.
template <typename Make>
auto all_rows(sqlite3* db, const std::string& sql, Make make) {
  std::vector<decltype(make(std::declval<const Stmt&>()))> out;
  Stmt q(db, sql.c_str());
  while (q.step()) out.push_back(make(q));
  return out;
}

// BEGIN IMMEDIATE .. COMMIT, rolled back when the scope is left by an exception.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) { exec("BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    exec("COMMIT");
    done_ = true;
  }

 private:
  void exec(const char* sql) {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("journal: ") + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  bool done_ = false;
};

}  // namespace

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Journal::Journal(const std::string& path) : path_(path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw std::runtime_error(path + ": cannot open the journal: " + why);
  }
  sqlite3_busy_timeout(db_, 10000);
  try {
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    exec(kSchema);
  } catch (const std::exception& e) {
    sqlite3_close(db_);
    throw std::runtime_error(path + ": " + e.what());
  }
}

Journal::~Journal() { sqlite3_close(db_); }

void Journal::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string why = err ? err : "error";
    sqlite3_free(err);
    throw std::runtime_error("journal: " + why);
  }
}

bool Journal::add_instance(const std::string& study_uid, const std::string& series_uid,
                           const std::string& sop_uid, const std::string& calling_ae, double now) {
  std::lock_guard<std::mutex> lock(mutex_);
  Transaction t(db_);
  Stmt(db_, "INSERT OR IGNORE INTO instances(sop_uid, series_uid) VALUES(?, ?)")
      .bind(1, sop_uid)
      .bind(2, series_uid)
      .run();
  const bool counted = sqlite3_changes(db_) > 0;
  std::string state;
  {
    Stmt q(db_, "SELECT state FROM series WHERE series_uid = ?");
    q.bind(1, series_uid);
    if (q.step()) state = q.text(0);
  }
  upsert_receiving(study_uid, series_uid, calling_ae, now, counted ? 1 : 0, false);
  t.commit();
  return state != "receiving";
}

void Journal::refuse_instance(const std::string& study_uid, const std::string& series_uid,
                              const std::string& calling_ae, double now) {
  std::lock_guard<std::mutex> lock(mutex_);
  upsert_receiving(study_uid, series_uid, calling_ae, now, 0, true);
}

void Journal::upsert_receiving(const std::string& study_uid, const std::string& series_uid,
                               const std::string& calling_ae, double now, long long instances,
                               bool refused) {
  Stmt(db_,
       "INSERT INTO series(series_uid, study_uid, state, instances, first_at, last_at, calling_ae, "
       "refused) VALUES(?, ?, 'receiving', ?, ?, ?, ?, ?) ON CONFLICT(series_uid) DO UPDATE SET "
       "state = 'receiving', instances = instances + excluded.instances, last_at = "
       "excluded.last_at, reason = '', refused = CASE WHEN excluded.refused = 1 THEN refused + 1 "
       "ELSE 0 END")
      .bind(1, series_uid)
      .bind(2, study_uid)
      .bind(3, instances)
      .bind(4, now)
      .bind(5, now)
      .bind(6, calling_ae)
      .bind(7, static_cast<long long>(refused ? 1 : 0))
      .run();
}

std::vector<SeriesRow> Journal::complete_idle(double now, double idle_s, bool by_study) {
  std::lock_guard<std::mutex> lock(mutex_);
  Transaction t(db_);
  std::vector<SeriesRow> receiving;
  std::vector<long long> refused;
  std::map<std::string, double> study_last;
  {
    Stmt q(db_,
           "SELECT study_uid, series_uid, state, instances, first_at, last_at, calling_ae, reason, "
           "run_s, done_at, refused FROM series WHERE state = 'receiving'");
    while (q.step()) {
      receiving.push_back(series_row(q));
      refused.push_back(q.integer(10));
    }
  }
  for (const auto& s : receiving)
    study_last[s.study_uid] = std::max(study_last[s.study_uid], s.last_at);
  std::vector<SeriesRow> done;
  for (std::size_t i = 0; i < receiving.size(); ++i) {
    auto& s = receiving[i];
    const double last = by_study ? study_last[s.study_uid] : s.last_at;
    if (now - last < idle_s) continue;
    s.state = refused[i] ? "failed" : "complete";
    if (refused[i])
      s.reason = std::to_string(refused[i]) +
                 " of its instances were refused while the spool was full: send the series again";
    Stmt(db_, "UPDATE series SET state = ?, reason = ? WHERE series_uid = ?")
        .bind(1, s.state)
        .bind(2, s.reason)
        .bind(3, s.series_uid)
        .run();
    done.push_back(s);
  }
  t.commit();
  return done;
}

std::optional<SeriesRow> Journal::start_next() {
  std::lock_guard<std::mutex> lock(mutex_);
  Transaction t(db_);
  Stmt q(db_, (std::string(kSeriesColumns) + "WHERE state = 'complete' ORDER BY last_at LIMIT 1")
                  .c_str());
  if (!q.step()) return std::nullopt;
  SeriesRow row = series_row(q);
  Stmt(db_, "UPDATE series SET state = 'running' WHERE series_uid = ?")
      .bind(1, row.series_uid)
      .run();
  t.commit();
  row.state = "running";
  return row;
}

void Journal::finish(const std::string& series_uid, double run_s, double now,
                     const std::vector<std::string>& files,
                     const std::vector<std::string>& destinations) {
  std::lock_guard<std::mutex> lock(mutex_);
  Transaction t(db_);
  // Nothing to send: the series is as far as it goes.
  const std::string state = files.empty() || destinations.empty() ? "sent" : "done";
  Stmt(db_,
       "UPDATE series SET state = ?, run_s = ?, done_at = ?, reason = '' "
       "WHERE series_uid = ? AND state = 'running'")
      .bind(1, state)
      .bind(2, run_s)
      .bind(3, now)
      .bind(4, series_uid)
      .run();
  if (sqlite3_changes(db_) == 0) return;  // instances came meanwhile: it runs again
  for (const auto& d : destinations)
    for (const auto& f : files)
      Stmt(db_,
           "INSERT INTO sends(series_uid, destination, file, next_at) VALUES(?, ?, ?, ?) "
           "ON CONFLICT(series_uid, destination, file) DO UPDATE SET state = 'pending', "
           "attempts = 0, next_at = excluded.next_at, last_error = ''")
          .bind(1, series_uid)
          .bind(2, d)
          .bind(3, f)
          .bind(4, now)
          .run();
  t.commit();
}

void Journal::fail(const std::string& series_uid, const std::string& reason, double run_s,
                   double now, const std::string& state) {
  std::lock_guard<std::mutex> lock(mutex_);
  Stmt(db_,
       "UPDATE series SET state = ?, reason = ?, run_s = ?, done_at = ? "
       "WHERE series_uid = ? AND state = 'running'")
      .bind(1, state)
      .bind(2, reason)
      .bind(3, run_s)
      .bind(4, now)
      .bind(5, series_uid)
      .run();
}

std::vector<SendRow> Journal::due_sends(double now) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<SendRow> out;
  Stmt q(db_, (std::string(kSendColumns) + "WHERE state = 'pending' AND next_at <= ? ORDER BY id")
                  .c_str());
  q.bind(1, now);
  while (q.step()) out.push_back(send_row(q));
  return out;
}

std::size_t Journal::pending_sends() {
  std::lock_guard<std::mutex> lock(mutex_);
  Stmt q(db_, "SELECT COUNT(*) FROM sends WHERE state = 'pending'");
  q.step();
  return static_cast<std::size_t>(q.integer(0));
}

bool Journal::send_succeeded(long long id) {
  std::lock_guard<std::mutex> lock(mutex_);
  Transaction t(db_);
  Stmt(db_, "UPDATE sends SET state = 'sent', attempts = attempts + 1, last_error = '' WHERE id = ?")
      .bind(1, id)
      .run();
  std::string series;
  {
    Stmt q(db_, "SELECT series_uid FROM sends WHERE id = ?");
    q.bind(1, id);
    if (q.step()) series = q.text(0);
  }
  Stmt left(db_, "SELECT COUNT(*) FROM sends WHERE series_uid = ? AND state = 'pending'");
  left.bind(1, series);
  left.step();
  const bool last = left.integer(0) == 0;
  if (last)
    Stmt(db_, "UPDATE series SET state = 'sent' WHERE series_uid = ? AND state = 'done'")
        .bind(1, series)
        .run();
  t.commit();
  return last;
}

void Journal::send_failed(long long id, const std::string& error, double now,
                          double max_backoff_s) {
  std::lock_guard<std::mutex> lock(mutex_);
  int attempts = 0;
  {
    Stmt q(db_, "SELECT attempts FROM sends WHERE id = ?");
    q.bind(1, id);
    if (q.step()) attempts = static_cast<int>(q.integer(0));
  }
  ++attempts;
  const double backoff = std::min(max_backoff_s, std::pow(2.0, std::min(attempts, 20)));
  Stmt(db_, "UPDATE sends SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?")
      .bind(1, static_cast<long long>(attempts))
      .bind(2, now + backoff)
      .bind(3, error)
      .bind(4, id)
      .run();
}

std::vector<std::string> Journal::recover() {
  std::lock_guard<std::mutex> lock(mutex_);
  Transaction t(db_);
  std::vector<std::string> out;
  {
    Stmt q(db_, "SELECT series_uid FROM series WHERE state = 'running'");
    while (q.step()) out.push_back(q.text(0));
  }
  exec("UPDATE series SET state = 'complete' WHERE state = 'running'");
  t.commit();
  return out;
}

std::vector<SeriesRow> Journal::series() {
  std::lock_guard<std::mutex> lock(mutex_);
  return all_rows(db_, std::string(kSeriesColumns) + "ORDER BY first_at", series_row);
}

std::optional<SeriesRow> Journal::series(const std::string& series_uid) {
  std::lock_guard<std::mutex> lock(mutex_);
  Stmt q(db_, (std::string(kSeriesColumns) + "WHERE series_uid = ?").c_str());
  q.bind(1, series_uid);
  if (!q.step()) return std::nullopt;
  return series_row(q);
}

std::vector<SendRow> Journal::sends() {
  std::lock_guard<std::mutex> lock(mutex_);
  return all_rows(db_, std::string(kSendColumns) + "ORDER BY id", send_row);
}

}  // namespace spineparse::serve
