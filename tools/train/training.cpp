#include "train/training.hpp"

#include <torch/torch.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "io/dataset.hpp"
#include "io/volume_io.hpp"
#include "nn/networks.hpp"
#include "nn/resample.hpp"
#include "nn/safetensors.hpp"
#include "spineparse/files.hpp"
#include "train/folds.hpp"

namespace spineparse::nn {
namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Configuration

namespace {
template <typename T>
void take(json& j, const char* key, T& v) {
  if (j.contains(key)) {
    v = j[key].get<T>();
    j.erase(key);
  }
}
}  // namespace

TrainConfig TrainConfig::from_json_file(const std::string& path) {
  TrainConfig c;
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw std::runtime_error("training config " + path + ": " + e.what());
  }
  try {
    take(j, "coarse_width", c.coarse_width);
    take(j, "coarse_height", c.coarse_height);
    take(j, "coarse_cols", c.coarse_cols);
    take(j, "coarse_slices", c.coarse_slices);
    take(j, "deeplab_epochs", c.deeplab_epochs);
    take(j, "gcsn_epochs", c.gcsn_epochs);
    take(j, "coarse_batch", c.coarse_batch);
    take(j, "coarse_lr", c.coarse_lr);
    take(j, "ds_weight", c.ds_weight);
    take(j, "fine_fmaps", c.fine_fmaps);
    take(j, "fine_height", c.fine_height);
    take(j, "fine_cols", c.fine_cols);
    take(j, "fine_epochs", c.fine_epochs);
    take(j, "fine_batch", c.fine_batch);
    take(j, "fine_lr", c.fine_lr);
    take(j, "fine_logits", c.fine_logits);
    take(j, "fine_init", c.fine_init);
    take(j, "loss", c.loss);
    take(j, "weight_decay", c.weight_decay);
    take(j, "iterations_per_epoch", c.iterations_per_epoch);
    take(j, "stop_after_epochs", c.stop_after_epochs);
    take(j, "seed", c.seed);
    if (j.contains("augment")) {
      json a = j["augment"];
      take(a, "enabled", c.augment.enabled);
      take(a, "rotate_deg", c.augment.rotate_deg);
      take(a, "elastic_p", c.augment.elastic_p);
      take(a, "elastic_sigma", c.augment.elastic_sigma);
      take(a, "elastic_alpha", c.augment.elastic_alpha);
      take(a, "contrast_p", c.augment.contrast_p);
      if (!a.empty()) throw std::runtime_error("unknown key /augment/" + a.begin().key());
      j.erase("augment");
    }
  } catch (const json::exception& e) {
    throw std::runtime_error("training config " + path + ": " + e.what());
  }
  if (!j.empty())
    throw std::runtime_error("training config " + path + ": unknown key /" + j.begin().key());
  if (c.loss != "ce" && c.loss != "ce+dice") {
    throw std::runtime_error("training config " + path + ": loss is \"ce\" or \"ce+dice\", not \"" +
                             c.loss + "\"");
  }
  if (c.fine_logits != "in-sample" && c.fine_logits != "out-of-fold") {
    throw std::runtime_error("training config " + path +
                             ": fine_logits is in-sample or out-of-fold");
  }
  return c;
}

std::string TrainConfig::to_json() const {
  json j = {{"coarse_width", coarse_width},
            {"coarse_height", coarse_height},
            {"coarse_cols", coarse_cols},
            {"coarse_slices", coarse_slices},
            {"deeplab_epochs", deeplab_epochs},
            {"gcsn_epochs", gcsn_epochs},
            {"coarse_batch", coarse_batch},
            {"coarse_lr", coarse_lr},
            {"ds_weight", ds_weight},
            {"fine_fmaps", fine_fmaps},
            {"fine_height", fine_height},
            {"fine_cols", fine_cols},
            {"fine_epochs", fine_epochs},
            {"fine_batch", fine_batch},
            {"fine_lr", fine_lr},
            {"fine_logits", fine_logits},
            {"fine_init", fine_init},
            {"loss", loss},
            {"weight_decay", weight_decay},
            {"iterations_per_epoch", iterations_per_epoch},
            {"stop_after_epochs", stop_after_epochs},
            {"seed", seed},
            {"augment",
             {{"enabled", augment.enabled},
              {"rotate_deg", augment.rotate_deg},
              {"elastic_p", augment.elastic_p},
              {"elastic_sigma", augment.elastic_sigma},
              {"elastic_alpha", augment.elastic_alpha},
              {"contrast_p", augment.contrast_p}}}};
  return j.dump(2);
}

// ---------------------------------------------------------------------------------------------
// Loss

// Cross-entropy, plus the soft Dice term when cfg.loss is "ce+dice".
torch::Tensor segmentation_loss(const torch::Tensor& logits, const torch::Tensor& y,
                                const TrainConfig& cfg) {
  auto ce = F::cross_entropy(logits, y);
  if (cfg.loss != "ce+dice") return ce;
  const std::int64_t C = logits.size(1);
  auto p = torch::softmax(logits, 1);
  auto onehot = F::one_hot(y, C).movedim(-1, 1).to(p.scalar_type());
  std::vector<std::int64_t> dims = {0};
  for (std::int64_t d = 2; d < logits.dim(); ++d) dims.push_back(d);
  auto inter = (p * onehot).sum(dims), denom = p.sum(dims) + onehot.sum(dims);
  auto dice = (2 * inter + 1e-5) / (denom + 1e-5);  // [C]
  return ce + (1 - dice.narrow(0, 1, C - 1).mean());
}

// ---------------------------------------------------------------------------------------------
// Data

namespace {

constexpr float kMean = 466.0f, kStd = 379.0f;

struct Volume {
  std::string id;
  NdArrayPtr image;  // raw float32 [D,H,W]
  NdArrayPtr mask;   // uint8 [D,H,W]
};

std::vector<Volume> load_cases(const std::string& data_dir, const std::vector<int>& numbers,
                               const std::vector<CaseSeed>& seeds) {
  std::vector<Volume> out;
  for (int n : numbers) {
    const CaseSeed& s = seeds.at(n - 1);
    auto it = s.attrs.find("mask_path");
    if (it == s.attrs.end())
      throw std::runtime_error("case " + s.id + " in " + data_dir +
                               " has no mask; training needs one per case");
    Volume v;
    v.id = s.id;
    v.image = io::read_image(s.attrs.at("image_path")).data;
    v.mask = io::read_labels(it->second, 19).data;
    if (v.mask->shape() != v.image->shape())
      throw std::runtime_error("case " + s.id + ": mask and image differ in size");
    out.push_back(v);
  }
  return out;
}

// Nearest-neighbour resize of the central rows, skimage order 0 (pixel centres).
torch::Tensor resize_labels(const NdArray& m, std::int64_t oh, std::int64_t ow) {
  const std::int64_t D = m.dim(0), H = m.dim(1), W = m.dim(2);
  const RowCrop crop = central_rows(H);
  auto out = torch::zeros({D, oh, ow}, torch::kInt64);
  auto* y = out.data_ptr<std::int64_t>();
  const auto* x = m.data<std::uint8_t>();
  for (std::int64_t d = 0; d < D; ++d)
    for (std::int64_t r = 0; r < oh; ++r) {
      const std::int64_t sr = std::min(
          crop.rows() - 1, static_cast<std::int64_t>(std::floor((r + 0.5) * crop.rows() / oh)));
      for (std::int64_t c = 0; c < ow; ++c) {
        const std::int64_t sc =
            std::min(W - 1, static_cast<std::int64_t>(std::floor((c + 0.5) * W / ow)));
        y[(d * oh + r) * ow + c] = x[(d * H + crop.begin + sr) * W + sc];
      }
    }
  return out;
}

// The image normalised as io.normalise does ((x - 466) / 379 in float32).
NdArray normalised(const NdArray& raw) {
  NdArray n(DType::kFloat32, raw.shape());
  const float* x = raw.data<float>();
  float* y = n.data<float>();
  for (std::int64_t i = 0; i < raw.numel(); ++i) y[i] = (x[i] - kMean) / kStd;
  return n;
}

torch::Tensor as_tensor(const NdArray& a) {
  return torch::from_blob(const_cast<void*>(a.raw()), a.shape(), torch::kFloat32).clone();
}

// Network inputs built by the inference stages' own functions, so training sees what inference
// sees. Coarse: x [1, Dp, h, w], y [Dp, h, w] (padded slices labelled 0). Fine MR: [D, h, w].
std::pair<torch::Tensor, torch::Tensor> coarse_sample(const Volume& v, const TrainConfig& c) {
  const auto ci = make_coarse_input(normalised(*v.image), kMean, kStd, c.coarse_height,
                                    c.coarse_cols, c.coarse_slices);
  auto x = as_tensor(*ci.input)[0];
  auto y = resize_labels(*v.mask, c.coarse_height, c.coarse_cols);
  auto yp = torch::zeros({x.size(1), y.size(1), y.size(2)}, torch::kInt64);
  yp.narrow(0, ci.pad_before, y.size(0)).copy_(y);
  return {x, yp};
}

torch::Tensor fine_mr(const Volume& v, const TrainConfig& c) {
  return as_tensor(*make_fine_mr(normalised(*v.image), kMean, kStd, c.fine_height, c.fine_cols));
}

// Mean Dice over foreground classes present in either map (spec 6 DiceCoefficient, skip 0).
double dice_fg(const torch::Tensor& pred, const torch::Tensor& truth) {
  double sum = 0;
  int n = 0;
  for (int c = 1; c < 20; ++c) {
    auto p = pred == c, g = truth == c;
    const double ps = p.sum().item<double>(), gs = g.sum().item<double>();
    if (ps == 0 && gs == 0) continue;
    sum += 2 * (p & g).sum().item<double>() / (ps + gs + 1e-7);
    ++n;
  }
  return n ? sum / n : 1.0;
}

struct Batch {
  torch::Tensor a, b, y;
};

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

struct Task {
  std::string name, dir;
  torch::nn::Module* model = nullptr;
  int n_items = 0, epochs = 1, batch = 1;
  double lr = 1e-3;
  std::function<Batch(const std::vector<int>& items, std::uint64_t seed)> make_batch;
  std::function<torch::Tensor(const Batch&)> loss;
  std::function<double()> validate;
};

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

TrainResult run_task(Task& t, const TrainConfig& cfg, bool resume, const ProgressFn& progress) {
  fs::create_directories(t.dir);
  const std::string last = t.dir + "/last.safetensors", best = t.dir + "/best.safetensors",
                    opt_path = t.dir + "/optimizer.pt", state_path = t.dir + "/state.json",
                    csv_path = t.dir + "/training.csv";
  torch::optim::Adam opt(t.model->parameters(),
                         torch::optim::AdamOptions(t.lr).weight_decay(cfg.weight_decay));
  TrainResult res;
  res.best_weights = best;
  int start_epoch = 0;
  if (resume && fs::exists(state_path)) {
    auto st = json::parse(read_file(state_path));
    start_epoch = st["epochs_done"].get<int>();
    res.best_dice = st["best_dice"].get<double>();
    res.best_epoch = st["best_epoch"].get<int>();
    for (const auto& e : st["log"]) {
      res.log.push_back(
          {e["epoch"], e["iterations"], e["loss"], e["lr"], e["val_dice"], e["seconds"]});
    }
    load_state(*t.model, load_safetensors(last).tensors, last);
    torch::load(opt, opt_path);
    if (progress) progress(t.name + ": resuming after epoch " + std::to_string(start_epoch));
  }
  const int iters =
      cfg.iterations_per_epoch > 0 ? cfg.iterations_per_epoch : std::max(1, t.n_items / t.batch);
  const int m1 = t.epochs / 3, m2 = static_cast<int>(t.epochs / 1.5);
  const int end_epoch = cfg.stop_after_epochs > 0
                            ? std::min(t.epochs, start_epoch + cfg.stop_after_epochs)
                            : t.epochs;
  for (int epoch = start_epoch; epoch < end_epoch; ++epoch) {
    const double lr = t.lr * std::pow(0.2, (epoch >= m1) + (epoch >= m2));
    for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
    const auto t0 = Clock::now();
    // Epoch order: a permutation that depends on the seed and the epoch only.
    std::vector<int> order(t.n_items);
    for (int i = 0; i < t.n_items; ++i) order[i] = i;
    std::uint64_t r = mix3(cfg.seed, static_cast<std::uint64_t>(epoch), 7);
    for (int i = t.n_items - 1; i > 0;
         --i) {  // Fisher-Yates with our own generator: same on every platform
      r = mix3(r, static_cast<std::uint64_t>(i), 11);
      std::swap(order[i], order[r % static_cast<std::uint64_t>(i + 1)]);
    }
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
    EpochLog e{epoch + 1, done, loss_sum / std::max(1, done),
               lr,        val,  std::chrono::duration<double>(Clock::now() - t0).count()};
    res.log.push_back(e);
    const auto state = state_of(*t.model);
    if (val > res.best_dice || res.best_epoch < 0) {
      res.best_dice = val;
      res.best_epoch = epoch + 1;
      save_safetensors(best, state,
                       {{"epoch", std::to_string(epoch + 1)},
                        {"val_dice", std::to_string(val)},
                        {"task", t.name}});
    }
    save_safetensors(last, state, {{"epoch", std::to_string(epoch + 1)}, {"task", t.name}});
    const std::string tmp = temp_path_for(opt_path);
    torch::save(opt, tmp);
    commit_file(tmp, opt_path);
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
    write_file_atomic(csv_path, csv.str());
    write_curve_svg(t.dir + "/curve.svg", res.log);
    write_file_atomic(state_path, json({{"task", t.name},
                                        {"epochs_done", epoch + 1},
                                        {"epochs", t.epochs},
                                        {"best_dice", res.best_dice},
                                        {"best_epoch", res.best_epoch},
                                        {"log", log}})
                                      .dump(2));
    if (progress) {
      const double per_epoch = e.seconds;
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "%s epoch %d/%d  it %d  loss %.4f  lr %.2g  val Dice %.4f (best %.4f @%d)  "
                    "%.1fs/epoch  ETA %.0fs",
                    t.name.c_str(), epoch + 1, t.epochs, done, e.loss, lr, val, res.best_dice,
                    res.best_epoch, per_epoch, per_epoch * (t.epochs - epoch - 1));
      progress(buf);
    }
  }
  return res;
}

std::vector<CaseSeed> dataset(const std::string& data_dir) {
  auto seeds = io::list_dataset(data_dir, "auto");
  if (seeds.empty()) throw std::runtime_error("no volumes in " + data_dir);
  return seeds;
}

std::string fold_dir(const std::string& out, int fold) {
  return out + "/fold" + std::to_string(fold + 1);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Coarse

TrainResult train_coarse(const std::string& data_dir, int fold, const TrainConfig& cfg,
                         const std::string& out_dir, bool resume, const ProgressFn& progress) {
  torch::manual_seed(cfg.seed);
  const auto seeds = dataset(data_dir);
  const Fold f = make_fold(static_cast<int>(seeds.size()), fold);
  if (progress)
    progress("fold " + std::to_string(fold + 1) + ": " + std::to_string(f.train.size()) +
             " training, " + std::to_string(f.val.size()) + " validation, " +
             std::to_string(f.test.size()) + " test cases");
  std::vector<std::pair<torch::Tensor, torch::Tensor>> train, val;
  for (const auto& v : load_cases(data_dir, f.train, seeds)) train.push_back(coarse_sample(v, cfg));
  for (const auto& v : load_cases(data_dir, f.val, seeds)) val.push_back(coarse_sample(v, cfg));
  const std::string base = fold_dir(out_dir, fold) + "/coarse";
  fs::create_directories(base);
  write_file_atomic(base + "/config.json", cfg.to_json());

  auto make_batch = [&](const std::vector<int>& items, std::uint64_t seed) {
    std::vector<torch::Tensor> xs, ys;
    for (std::size_t k = 0; k < items.size(); ++k) {
      const auto& [x, y] = train[items[k]];
      AugmentedSample s{x.permute({1, 0, 2, 3}), {}, y};  // slices as the batch axis: [D,1,H,W]
      auto a = augment(s, cfg.augment, seed * 31 + k);
      xs.push_back(a.image.permute({1, 0, 2, 3}));
      ys.push_back(a.labels);
    }
    return Batch{torch::stack(xs), {}, torch::stack(ys)};
  };
  auto validate_with = [&](Gcsn& net) {
    double sum = 0;
    for (const auto& [x, y] : val)
      sum += dice_fg(net->forward(x.unsqueeze(0)).logits.argmax(1)[0], y);
    return sum / std::max<std::size_t>(1, val.size());
  };

  // Stage 1: DeepLabv3+ from scratch.
  Gcsn deeplab(false, 20, cfg.coarse_width);
  Task t1;
  t1.name = "deeplab";
  t1.dir = base + "/deeplab";
  t1.model = deeplab.get();
  t1.n_items = static_cast<int>(train.size());
  t1.epochs = cfg.deeplab_epochs;
  t1.batch = cfg.coarse_batch;
  t1.lr = cfg.coarse_lr;
  t1.make_batch = make_batch;
  t1.loss = [&](const Batch& b) {
    return segmentation_loss(deeplab->forward(b.a).logits, b.y, cfg);
  };
  t1.validate = [&] { return validate_with(deeplab); };
  auto r1 = run_task(t1, cfg, resume, progress);

  // Stage 2: the GCSN from the best DeepLabv3+ weights (shared layers), graph module fresh.
  Gcsn gcsn(true, 20, cfg.coarse_width);
  {
    auto pre = load_safetensors(r1.best_weights).tensors;
    auto mine = state_of(*gcsn);
    torch::NoGradGuard ng;
    for (auto& [k, v] : mine) {
      auto it = pre.find(k);
      if (it != pre.end()) v.copy_(it->second.reshape(v.sizes()));
    }
  }
  Task t2 = t1;
  t2.name = "gcsn";
  t2.dir = base + "/gcsn";
  t2.model = gcsn.get();
  t2.epochs = cfg.gcsn_epochs;
  t2.loss = [&](const Batch& b) {
    auto out = gcsn->forward(b.a);
    auto z = F::interpolate(out.deep_supervision,
                            F::InterpolateFuncOptions()
                                .size(std::vector<int64_t>{b.y.size(1), b.y.size(2), b.y.size(3)})
                                .mode(torch::kTrilinear)
                                .align_corners(true));
    return segmentation_loss(out.logits, b.y, cfg) + cfg.ds_weight * F::cross_entropy(z, b.y);
  };
  t2.validate = [&] { return validate_with(gcsn); };
  return run_task(t2, cfg, resume, progress);
}

// ---------------------------------------------------------------------------------------------
// Fine

TrainResult train_fine(const std::string& data_dir, int fold, const TrainConfig& cfg,
                       const std::string& out_dir, const std::string& coarse_weights, bool resume,
                       const ProgressFn& progress) {
  torch::manual_seed(cfg.seed);
  const auto seeds = dataset(data_dir);
  const int n = static_cast<int>(seeds.size());
  const Fold f = make_fold(n, fold);
  // Which GCSN gives each case its logits.
  std::vector<std::string> source(n + 1, coarse_weights);
  if (cfg.fine_logits == "out-of-fold") {
    for (int k = 0; k < 5; ++k) {
      const std::string w = fold_dir(out_dir, k) + "/coarse/gcsn/best.safetensors";
      if (!fs::exists(w))
        throw std::runtime_error("out-of-fold logits need every fold's coarse model; missing " + w +
                                 " (train coarse with --fold all first)");
      for (int c : make_fold(n, k).test) source[c] = w;
    }
  } else if (coarse_weights.empty() || !fs::exists(coarse_weights)) {
    throw std::runtime_error(
        "fine training needs the coarse model: --coarse-weights FILE (missing: '" + coarse_weights +
        "')");
  }
  std::map<std::string, Gcsn> nets;
  auto logits_for = [&](const Volume& v, int number) {
    const std::string& w = source[number];
    if (!nets.count(w)) {
      auto st = load_safetensors(w).tensors;
      Gcsn g(true, 20, gcsn_width_of(st));
      load_state(*g, st, w);
      g->eval();
      nets.emplace(w, g);
    }
    torch::NoGradGuard ng;
    auto [x, y] = coarse_sample(v, cfg);
    const std::int64_t D = v.image->dim(0), before = (x.size(1) - D + 1) / 2;
    return nets.at(w)
        ->forward(x.unsqueeze(0))
        .logits[0]
        .narrow(1, before, D)
        .permute({1, 0, 2, 3})
        .contiguous();  // [D,20,h,w]
  };
  struct Slices {
    torch::Tensor mr, unary, y;  // [D,1,H,W], [D,20,h,w], [D,H,W]
  };
  auto build = [&](const std::vector<int>& numbers) {
    std::vector<Slices> out;
    auto vols = load_cases(data_dir, numbers, seeds);
    for (std::size_t i = 0; i < vols.size(); ++i) {
      Slices s;
      s.mr = fine_mr(vols[i], cfg).unsqueeze(1);
      s.unary = logits_for(vols[i], numbers[i]);
      s.y = resize_labels(*vols[i].mask, cfg.fine_height, cfg.fine_cols);
      out.push_back(s);
    }
    return out;
  };
  if (progress) progress("fine: computing coarse logits (" + cfg.fine_logits + ")");
  auto train = build(f.train);
  auto val = build(f.val);
  std::vector<std::pair<int, int>> items;  // (case, slice)
  for (std::size_t c = 0; c < train.size(); ++c)
    for (int d = 0; d < train[c].mr.size(0); ++d) items.emplace_back(static_cast<int>(c), d);
  const std::string dir = fold_dir(out_dir, fold) + "/fine";
  fs::create_directories(dir);
  write_file_atomic(dir + "/config.json", cfg.to_json());
  ResUNet2d net(21, 20, cfg.fine_fmaps);
  if (!cfg.fine_init.empty())
    load_state(*net, load_safetensors(cfg.fine_init).tensors, cfg.fine_init);
  Task t;
  t.name = "resunet2d";
  t.dir = dir;
  t.model = net.get();
  t.n_items = static_cast<int>(items.size());
  t.epochs = cfg.fine_epochs;
  t.batch = cfg.fine_batch;
  t.lr = cfg.fine_lr;
  t.make_batch = [&](const std::vector<int>& idx, std::uint64_t seed) {
    std::vector<torch::Tensor> a, b, y;
    for (std::size_t k = 0; k < idx.size(); ++k) {
      const auto [c, d] = items[idx[k]];
      AugmentedSample s{train[c].mr.narrow(0, d, 1), train[c].unary.narrow(0, d, 1),
                        train[c].y.narrow(0, d, 1)};
      auto r = augment(s, cfg.augment, seed * 31 + k);
      a.push_back(r.image[0]);
      b.push_back(r.extra[0]);
      y.push_back(r.labels[0]);
    }
    return Batch{torch::stack(a), torch::stack(b), torch::stack(y)};
  };
  t.loss = [&](const Batch& bt) { return segmentation_loss(net->forward(bt.a, bt.b), bt.y, cfg); };
  t.validate = [&] {
    double sum = 0;
    for (const auto& s : val) sum += dice_fg(net->forward(s.mr, s.unary).argmax(1), s.y);
    return sum / std::max<std::size_t>(1, val.size());
  };
  return run_task(t, cfg, resume, progress);
}

}  // namespace spineparse::nn
