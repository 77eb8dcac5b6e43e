#include "train/epoch_loop.hpp"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "nn/networks.hpp"
#include "nn/safetensors.hpp"
#include "spineparse/files.hpp"

namespace spineparse::tools::train {

using namespace spineparse::nn;  // the library floor training builds on
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// A bounded queue fed by one producer thread.
class BatchQueue {
 public:
  explicit BatchQueue(std::size_t cap) : cap_(cap) {}
  void push(Batch b) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return q_.size() < cap_ || stop_; });
    q_.push_back(std::move(b));
    cv_.notify_all();
  }
  bool pop(Batch& b) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return !q_.empty() || done_ || !error_.empty(); });
    if (!error_.empty()) throw std::runtime_error(error_);
    if (q_.empty()) return false;
    b = std::move(q_.front());
    q_.pop_front();
    cv_.notify_all();
    return true;
  }
  void finish(const std::string& error = "") {
    std::lock_guard<std::mutex> lk(mu_);
    done_ = true;
    error_ = error;
    cv_.notify_all();
  }
  void stop() {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    cv_.notify_all();
  }

 private:
  std::size_t cap_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> q_;
  bool done_ = false, stop_ = false;
  std::string error_;
};

std::uint64_t mix3(std::uint64_t a, std::uint64_t b, std::uint64_t c) {
  std::uint64_t z = a * 0x9E3779B97F4A7C15ULL ^
                    (b + 0x632BE59BD9B4E019ULL) * 0xBF58476D1CE4E5B9ULL ^
                    (c + 1) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return z;
}

void write_curve_svg(const std::string& path, const std::vector<EpochLog>& log) {
  const int W = 640, H = 240, pad = 40;
  double max_loss = 1e-9;
  for (const auto& e : log) max_loss = std::max(max_loss, e.loss);
  auto x = [&](int i) {
    return pad + (log.size() > 1 ? (W - 2 * pad) * i / double(log.size() - 1) : 0.0);
  };
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='11'>"
    << "<rect width='100%' height='100%' fill='white'/><line x1='" << pad << "' y1='" << H - pad
    << "' x2='" << W - pad << "' y2='" << H - pad << "' stroke='#999'/><line x1='" << pad
    << "' y1='" << pad / 2 << "' x2='" << pad << "' y2='" << H - pad << "' stroke='#999'/>";
  std::string loss_pts, dice_pts;
  for (std::size_t i = 0; i < log.size(); ++i) {
    loss_pts += std::to_string(x(i)) + "," +
                std::to_string(H - pad - (H - 1.5 * pad) * log[i].loss / max_loss) + " ";
    dice_pts += std::to_string(x(i)) + "," +
                std::to_string(H - pad - (H - 1.5 * pad) * log[i].val_dice) + " ";
  }
  s << "<polyline fill='none' stroke='#d33' stroke-width='2' points='" << loss_pts << "'/>"
    << "<polyline fill='none' stroke='#36c' stroke-width='2' points='" << dice_pts << "'/>"
    << "<text x='" << pad + 6 << "' y='14' fill='#d33'>training loss (max " << max_loss
    << ")</text>"
    << "<text x='" << pad + 220 << "' y='14' fill='#36c'>validation Dice (0..1)</text>"
    << "<text x='" << W / 2 << "' y='" << H - 10 << "'>epoch</text></svg>\n";
  write_file_atomic(path, s.str());
}

// The files of a task's folder.
struct TaskFiles {
  std::string last, best, optimizer, state, csv, curve;
  explicit TaskFiles(const std::string& dir)
      : last(dir + "/last.safetensors"),
        best(dir + "/best.safetensors"),
        optimizer(dir + "/optimizer.pt"),
        state(dir + "/state.json"),
        csv(dir + "/training.csv"),
        curve(dir + "/curve.svg") {}
};

// Resumes from state.json, last.safetensors and optimizer.pt; returns the epochs already done.
int resume_task(Task& t, torch::optim::Adam& opt, const TaskFiles& f, TrainResult& res,
                const ProgressFn& progress) {
  auto st = json::parse(read_file(f.state));
  const int done = st["epochs_done"].get<int>();
  res.best_dice = st["best_dice"].get<double>();
  res.best_epoch = st["best_epoch"].get<int>();
  for (const auto& e : st["log"]) {
    res.log.push_back(
        {e["epoch"], e["iterations"], e["loss"], e["lr"], e["val_dice"], e["seconds"]});
  }
  load_state(*t.model, load_safetensors(f.last).tensors, f.last);
  torch::load(opt, f.optimizer);
  if (progress) progress(t.name + ": resuming after epoch " + std::to_string(done));
  return done;
}

// The epoch's item order: a permutation that depends on the seed and the epoch only
// (Fisher-Yates with our own generator: the same on every platform).
std::vector<int> epoch_order(int n_items, std::uint64_t seed, int epoch) {
  std::vector<int> order(n_items);
  for (int i = 0; i < n_items; ++i) order[i] = i;
  std::uint64_t r = mix3(seed, static_cast<std::uint64_t>(epoch), 7);
  for (int i = n_items - 1; i > 0; --i) {
    r = mix3(r, static_cast<std::uint64_t>(i), 11);
    std::swap(order[i], order[r % static_cast<std::uint64_t>(i + 1)]);
  }
  return order;
}

// One epoch's optimisation (batches from a producer thread) and validation; the log's epoch is
// 1-based.
EpochLog train_epoch(Task& t, torch::optim::Adam& opt, const TrainConfig& cfg, int epoch, int iters,
                     double lr) {
  const auto t0 = Clock::now();
  const std::vector<int> order = epoch_order(t.n_items, cfg.seed, epoch);
  BatchQueue queue(3);
  std::thread producer([&] {
    try {
      for (int it = 0; it < iters; ++it) {
        std::vector<int> items;
        for (int b = 0; b < t.batch; ++b) items.push_back(order[(it * t.batch + b) % t.n_items]);
        queue.push(t.make_batch(items, mix3(cfg.seed, epoch, it)));
      }
      queue.finish();
    } catch (const std::exception& e) {
      queue.finish(e.what());
    }
  });
  t.model->train();
  double loss_sum = 0;
  int done = 0;
  Batch b;
  try {
    while (queue.pop(b)) {
      opt.zero_grad();
      auto loss = t.loss(b);
      loss.backward();
      opt.step();
      loss_sum += loss.item<double>();
      ++done;
    }
  } catch (...) {
    queue.stop();
    producer.join();
    throw;
  }
  producer.join();
  t.model->eval();
  double val = 0;
  {
    torch::NoGradGuard ng;
    val = t.validate();
  }
  return {epoch + 1, done, loss_sum / std::max(1, done),
          lr,        val,  std::chrono::duration<double>(Clock::now() - t0).count()};
}

// The weights (best when the validation Dice improved, last) and the optimizer's state.
void save_weights(Task& t, torch::optim::Adam& opt, const TaskFiles& f, TrainResult& res,
                  const EpochLog& e) {
  const auto state = state_of(*t.model);
  auto meta = t.metadata;
  meta["epoch"] = std::to_string(e.epoch);
  meta["task"] = t.name;
  if (e.val_dice > res.best_dice || res.best_epoch < 0) {
    res.best_dice = e.val_dice;
    res.best_epoch = e.epoch;
    auto best = meta;
    best["val_dice"] = std::to_string(e.val_dice);
    save_safetensors(f.best, state, best);
  }
  save_safetensors(f.last, state, meta);
  const std::string tmp = temp_path_for(f.optimizer);
  torch::save(opt, tmp);
  commit_file(tmp, f.optimizer);
}

// training.csv, curve.svg and state.json after `epochs_done` epochs.
void write_records(const Task& t, const TaskFiles& f, const TrainResult& res, int epochs_done) {
  json log = json::array();
  std::ostringstream csv;
  csv << "epoch,iterations,loss,lr,val_dice,seconds\n";
  for (const auto& l : res.log) {
    log.push_back({{"epoch", l.epoch},
                   {"iterations", l.iterations},
                   {"loss", l.loss},
                   {"lr", l.lr},
                   {"val_dice", l.val_dice},
                   {"seconds", l.seconds}});
    csv << l.epoch << "," << l.iterations << "," << l.loss << "," << l.lr << "," << l.val_dice
        << "," << l.seconds << "\n";
  }
  write_file_atomic(f.csv, csv.str());
  write_curve_svg(f.curve, res.log);
  write_file_atomic(f.state, json({{"task", t.name},
                                   {"epochs_done", epochs_done},
                                   {"epochs", t.epochs},
                                   {"best_dice", res.best_dice},
                                   {"best_epoch", res.best_epoch},
                                   {"log", log}})
                                 .dump(2));
}

void report_epoch(const Task& t, const TrainResult& res, const EpochLog& e,
                  const ProgressFn& progress) {
  if (!progress) return;
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "%s epoch %d/%d  it %d  loss %.4f  lr %.2g  val Dice %.4f (best %.4f @%d)  "
                "%.1fs/epoch  ETA %.0fs",
                t.name.c_str(), e.epoch, t.epochs, e.iterations, e.loss, e.lr, e.val_dice,
                res.best_dice, res.best_epoch, e.seconds, e.seconds * (t.epochs - e.epoch));
  progress(buf);
}

}  // namespace

TrainResult run_task(Task& t, const TrainConfig& cfg, bool resume, const ProgressFn& progress) {
  fs::create_directories(t.dir);
  const TaskFiles files(t.dir);
  torch::optim::Adam opt(t.model->parameters(),
                         torch::optim::AdamOptions(t.lr).weight_decay(cfg.weight_decay));
  TrainResult res;
  res.best_weights = files.best;
  const int start_epoch =
      resume && fs::exists(files.state) ? resume_task(t, opt, files, res, progress) : 0;
  const int iters =
      cfg.iterations_per_epoch > 0 ? cfg.iterations_per_epoch : std::max(1, t.n_items / t.batch);
  const int m1 = t.epochs / 3, m2 = static_cast<int>(t.epochs / 1.5);
  const int end_epoch = cfg.stop_after_epochs > 0
                            ? std::min(t.epochs, start_epoch + cfg.stop_after_epochs)
                            : t.epochs;
  for (int epoch = start_epoch; epoch < end_epoch; ++epoch) {
    const double lr = t.lr * std::pow(0.2, (epoch >= m1) + (epoch >= m2));
    for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
    const EpochLog e = train_epoch(t, opt, cfg, epoch, iters, lr);
    res.log.push_back(e);
    save_weights(t, opt, files, res, e);
    write_records(t, files, res, epoch + 1);
    report_epoch(t, res, e, progress);
  }
  return res;
}

}  // namespace spineparse::tools::train
