#include "node.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "journal.hpp"
#include "sender.hpp"
#include "spineparse/executor.hpp"

namespace spineparse::serve {
namespace fs = std::filesystem;

namespace {

// One line on stderr, with the local time.
void log_line(const std::string& line) {
  static std::mutex m;
  const std::time_t t = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  std::lock_guard<std::mutex> lock(m);
  std::fprintf(stderr, "%s serve: %s\n", when, line.c_str());
  std::fflush(stderr);
}

fs::path series_dir(const std::string& root, const SeriesRow& s) {
  return fs::path(root) / s.study_uid / s.series_uid;
}

// The DICOM results of a finished run (seg_*.dcm, sr_*.dcm at its top level), sorted.
std::vector<std::string> result_files(const fs::path& out) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(out, ec))
    if (e.is_regular_file() && e.path().extension() == ".dcm") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

class Node {
 public:
  Node(const GraphSpec& graph, const Registry& registry, const NodeOptions& options)
      : graph_(graph),
        registry_(registry),
        options_(options),
        journal_(journal_path(options.receiver.spool)),
        receiver_(options.receiver, journal_, log_line) {}

  int run(const std::atomic<int>& stop);

 private:
  void recover();
  void run_series(const SeriesRow& s);
  void send_due(double now);
  void sender_loop();
  void release_spool(const std::string& series_uid);

  const GraphSpec& graph_;
  const Registry& registry_;
  const NodeOptions& options_;
  Journal journal_;
  Receiver receiver_;
  std::atomic<bool> sender_stop_{false};
};

void Node::recover() {
  std::error_code ec;
  fs::remove_all(fs::path(options_.receiver.spool) / ".incoming", ec);  // partial instances
  for (const auto& uid : journal_.recover())
    log_line(fmt::format("series {}: its run was interrupted; it runs again", uid));
  const auto pending = journal_.pending_sends();
  if (pending) log_line(fmt::format("{} result{} still to send", pending, pending == 1 ? "" : "s"));
}

void Node::run_series(const SeriesRow& s) {
  const fs::path out = series_dir(options_.output, s);
  std::error_code ec;
  fs::remove_all(out, ec);  // a run that was interrupted, or a series run again
  RunOptions o;
  o.input_dir = series_dir(options_.receiver.spool, s).string();
  o.output_dir = out.string();
  o.progress = "none";
  // The cores shared by the series that run at once.
  const int parallel = std::max(1, options_.parallel);
  o.threads = std::max(1, (options_.threads > 0 ? options_.threads : available_cores()) / parallel);
  const auto t0 = std::chrono::steady_clock::now();
  std::string failure, state = "failed";
  RunReport r;
  try {
    r = run_graph(graph_, registry_, o);
    if (r.cases.empty())
      failure = "no readable MR series in its instances";
    else if (const auto& c = r.cases.front(); c.status == "skipped") {
      state = "skipped";
      failure = c.attrs.count("skipped") ? c.attrs.at("skipped") : "skipped";
    } else if (c.status != "ok") {
      failure = "[" + c.error_node + "] " + c.error;
    }
  } catch (const std::exception& e) {
    failure = e.what();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!failure.empty()) {
    journal_.fail(s.series_uid, failure, secs, unix_now(), state);
    log_line(fmt::format("series {}: {} after {:.1f} s: {}", s.series_uid, state, secs, failure));
    return;
  }
  for (const auto& e : r.run_errors)
    log_line(fmt::format("series {}: after the run: {}", s.series_uid, e));
  const auto files = result_files(out);
  journal_.finish(s.series_uid, secs, unix_now(), files, options_.send_to);
  log_line(fmt::format("series {}: {} instance{} ran in {:.1f} s ({:.1f} s opening the stages): "
                       "{} result{}{}",
                       s.series_uid, s.instances, s.instances == 1 ? "" : "s", secs, r.open_s,
                       files.size(), files.size() == 1 ? "" : "s",
                       files.empty() || options_.send_to.empty() ? "" : " to send"));
  if (files.empty() || options_.send_to.empty()) release_spool(s.series_uid);
}

void Node::release_spool(const std::string& series_uid) {
  if (options_.keep != "results") return;
  const auto s = journal_.series(series_uid);
  if (!s || s->state != "sent") return;
  const fs::path dir = series_dir(options_.receiver.spool, *s);
  const long long bytes = spool_size(dir.string());
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (!ec) receiver_.forget_bytes(bytes);
}

void Node::send_due(double now) {
  std::map<std::string, std::vector<SendRow>> by_destination;
  for (auto& s : journal_.due_sends(now)) by_destination[s.destination].push_back(std::move(s));
  for (const auto& [text, rows] : by_destination) {
    std::string why;
    const auto to = parse_destination(text, &why);
    std::vector<std::string> files;
    for (const auto& r : rows) files.push_back(r.file);
    const auto results = to ? send_files(options_.receiver.aet, *to, files, options_.receiver.tls)
                            : std::vector<std::string>(rows.size(), why);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (results[i].empty()) {
        if (journal_.send_succeeded(rows[i].id)) {
          log_line(fmt::format("series {}: results sent", rows[i].series_uid));
          release_spool(rows[i].series_uid);
        }
        continue;
      }
      journal_.send_failed(rows[i].id, results[i], unix_now(), options_.max_backoff_s);
      log_line(fmt::format("series {}: sending {} failed (attempt {}): {}; it is retried",
                           rows[i].series_uid, fs::path(rows[i].file).filename().string(),
                           rows[i].attempts + 1, results[i]));
    }
  }
}

void Node::sender_loop() {
  while (!sender_stop_) {
    try {
      send_due(unix_now());
    } catch (const std::exception& e) {
      log_line(std::string("sending: ") + e.what());
    }
    for (int i = 0; i < 5 && !sender_stop_; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

int Node::run(const std::atomic<int>& stop) {
  recover();
  std::string listen_error;  // written before listen_failed is set
  std::atomic<bool> listen_failed{false};
  std::thread receiving([&] {
    try {
      receiver_.run();
    } catch (const std::exception& e) {
      listen_error = e.what();
      listen_failed = true;
    }
  });
  std::thread sending([&] { sender_loop(); });
  log_line(fmt::format("spool {}, output {}", options_.receiver.spool, options_.output));
  const auto serving = [&] { return !stop && !listen_failed; };
  std::vector<std::thread> runners;  // each runs one complete series at a time
  for (int k = 0; k < std::max(1, options_.parallel); ++k)
    runners.emplace_back([&] {
      while (serving()) {
        if (const auto s = journal_.start_next())
          run_series(*s);
        else
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
  while (serving()) {
    for (const auto& s : journal_.complete_idle(unix_now(), options_.idle_s, options_.by_study))
      log_line(s.state == "failed"
                   ? fmt::format("series {}: failed: {}", s.series_uid, s.reason)
                   : fmt::format("series {} (study {}): complete, {} instance{}", s.series_uid,
                                 s.study_uid, s.instances, s.instances == 1 ? "" : "s"));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  receiver_.stop();
  receiving.join();
  for (auto& r : runners) r.join();  // the series running finish
  int code = 0;
  sender_stop_ = true;
  sending.join();
  if (listen_failed) {
    log_line(listen_error);
    code = 1;
  } else {
    send_due(1e300);  // one more try of every result not yet sent
    log_line(fmt::format("stopped; {} result{} still to send", journal_.pending_sends(),
                         journal_.pending_sends() == 1 ? "" : "s"));
  }
  return code;
}

}  // namespace

std::string journal_path(const std::string& spool) {
  return (fs::path(spool) / "journal.sqlite").string();
}

int serve(const GraphSpec& graph, const Registry& registry, const NodeOptions& options,
          const std::atomic<int>& stop) {
  // DCMTK leaves Nagle's algorithm on unless TCP_NODELAY is set: with it on, each C-STORE waits
  // for a delayed ACK (about 90 ms per instance on loopback, 70 times slower). A value the user
  // set wins.
  ::setenv("TCP_NODELAY", "1", 0);
  std::error_code ec;
  fs::create_directories(options.receiver.spool, ec);
  fs::create_directories(options.output, ec);
  try {
    Node node(graph, registry, options);
    return node.run(stop);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "serve: %s\n", e.what());
    return 1;
  }
}

int print_status(const std::string& spool) {
  if (!fs::exists(journal_path(spool))) {
    std::fprintf(stderr, "serve --status: %s has no journal (journal.sqlite)\n", spool.c_str());
    return 2;
  }
  Journal j(journal_path(spool));
  std::printf("%-44s %-10s %9s %7s  %s\n", "series", "state", "instances", "run s", "detail");
  std::map<std::string, std::pair<int, int>> sends;  // series -> (sent, pending)
  std::map<std::string, std::string> last_error;
  for (const auto& s : j.sends()) {
    auto& n = sends[s.series_uid];
    (s.state == "sent" ? n.first : n.second) += 1;
    if (s.state != "sent" && !s.last_error.empty()) last_error[s.series_uid] = s.last_error;
  }
  for (const auto& s : j.series()) {
    std::string detail = s.reason;
    if (const auto it = sends.find(s.series_uid); it != sends.end())
      detail = fmt::format("{} sent, {} to send{}", it->second.first, it->second.second,
                           last_error.count(s.series_uid) ? " (" + last_error[s.series_uid] + ")" : "");
    std::printf("%-44s %-10s %9d %7.1f  %s\n", s.series_uid.c_str(), s.state.c_str(), s.instances,
                s.run_s, detail.c_str());
  }
  return 0;
}

}  // namespace spineparse::serve
