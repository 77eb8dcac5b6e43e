#include "train/training.hpp"

#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/dataset.hpp"
#include "io/weights_metadata.hpp"
#include "nn/networks.hpp"
#include "nn/resample.hpp"
#include "nn/safetensors.hpp"
#include "spineparse/files.hpp"
#include "train/epoch_loop.hpp"
#include "train/folds.hpp"
#include "train/samples.hpp"

namespace spineparse::tools::train {

using namespace spineparse::nn;  // the library floor training builds on
namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using nlohmann::json;

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

namespace {

// The weights' training_range metadata: the properties of the fold's training cases.
std::string range_of(const std::vector<io::VolumeProperties>& cases, const std::string& data_dir) {
  return io::training_range_of(cases, "measured on " + std::to_string(cases.size()) +
                                          " training cases of " + data_dir)
      .to_json();
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

namespace {

using CoarseSample = std::pair<torch::Tensor, torch::Tensor>;

// One training batch of whole coarse volumes, augmented slice by slice.
Batch coarse_batch(const std::vector<CoarseSample>& train, const std::vector<int>& items,
                   std::uint64_t seed, const TrainConfig& cfg) {
  std::vector<torch::Tensor> xs, ys;
  for (std::size_t k = 0; k < items.size(); ++k) {
    const auto& [x, y] = train[items[k]];
    AugmentedSample s{x.permute({1, 0, 2, 3}), {}, y};  // slices as the batch axis: [D,1,H,W]
    auto a = augment(s, cfg.augment, seed * 31 + k);
    xs.push_back(a.image.permute({1, 0, 2, 3}));
    ys.push_back(a.labels);
  }
  return Batch{torch::stack(xs), {}, torch::stack(ys)};
}

// A GCSN whose layers shared with DeepLabv3+ start from its trained weights; the graph module
// starts fresh.
Gcsn gcsn_from_deeplab(const std::string& deeplab_weights, double width) {
  Gcsn gcsn(true, 20, width);
  auto pre = load_safetensors(deeplab_weights).tensors;
  auto mine = state_of(*gcsn);
  torch::NoGradGuard ng;
  for (auto& [k, v] : mine) {
    auto it = pre.find(k);
    if (it != pre.end()) v.copy_(it->second.reshape(v.sizes()));
  }
  return gcsn;
}

}  // namespace

TrainResult train_coarse(const std::string& data_dir, int fold, const TrainConfig& cfg,
                         const std::string& out_dir, bool resume, const ProgressFn& progress) {
  torch::manual_seed(cfg.seed);
  const auto seeds = dataset(data_dir);
  const Fold f = make_fold(static_cast<int>(seeds.size()), fold);
  if (progress)
    progress("fold " + std::to_string(fold + 1) + ": " + std::to_string(f.train.size()) +
             " training, " + std::to_string(f.val.size()) + " validation, " +
             std::to_string(f.test.size()) + " test cases");
  std::vector<CoarseSample> train, val;
  std::map<std::string, std::string> orientation_of;
  std::vector<io::VolumeProperties> train_properties;
  for (const auto& v : load_cases(data_dir, f.train, seeds, &orientation_of)) {
    train.push_back(coarse_sample(v, cfg));
    train_properties.push_back(v.properties);
  }
  for (const auto& v : load_cases(data_dir, f.val, seeds, &orientation_of))
    val.push_back(coarse_sample(v, cfg));
  const std::string orientation = common_orientation(orientation_of);
  const std::string base = fold_dir(out_dir, fold) + "/coarse";
  fs::create_directories(base);
  write_file_atomic(base + "/config.json", cfg.to_json());

  auto make_batch = [&](const std::vector<int>& items, std::uint64_t seed) {
    return coarse_batch(train, items, seed, cfg);
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
  t1.metadata[io::kOrientationKey] = orientation;
  t1.metadata[io::kTrainingRangeKey] = range_of(train_properties, data_dir);
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
  Gcsn gcsn = gcsn_from_deeplab(r1.best_weights, cfg.coarse_width);
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

namespace {

// Which GCSN gives each case (by number, 1-based) its coarse logits: one model for all, or with
// fine_logits = out-of-fold the model of the fold that held the case out.
std::vector<std::string> logit_sources(int n, const TrainConfig& cfg, const std::string& out_dir,
                                       const std::string& coarse_weights) {
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
  return source;
}

// The coarse logits of a case, [D,20,h,w], from its GCSN (each loaded once).
struct CoarseLogits {
  const TrainConfig& cfg;
  std::vector<std::string> source;
  std::map<std::string, Gcsn> nets;
  torch::Tensor operator()(const Volume& v, int number) {
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
        .contiguous();
  }
};

struct Slices {
  torch::Tensor mr, unary, y;  // [D,1,H,W], [D,20,h,w], [D,H,W]
};

// The fine network's inputs and targets for the cases `numbers`; their orientations and (for
// training cases) properties are recorded.
std::vector<Slices> fine_slices(const std::string& data_dir, const std::vector<int>& numbers,
                                const std::vector<CaseSeed>& seeds, const TrainConfig& cfg,
                                CoarseLogits& logits,
                                std::map<std::string, std::string>* orientation_of,
                                std::vector<io::VolumeProperties>* properties) {
  std::vector<Slices> out;
  const auto vols = load_cases(data_dir, numbers, seeds, orientation_of);
  for (std::size_t i = 0; i < vols.size(); ++i) {
    if (properties) properties->push_back(vols[i].properties);
    Slices s;
    s.mr = fine_mr(vols[i], cfg).unsqueeze(1);
    s.unary = logits(vols[i], numbers[i]);
    s.y = resize_labels(*vols[i].mask, cfg.fine_height, cfg.fine_cols);
    out.push_back(s);
  }
  return out;
}

// One training batch of (case, slice) items, augmented.
Batch fine_batch(const std::vector<Slices>& train, const std::vector<std::pair<int, int>>& items,
                 const std::vector<int>& idx, std::uint64_t seed, const TrainConfig& cfg) {
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
}

}  // namespace

TrainResult train_fine(const std::string& data_dir, int fold, const TrainConfig& cfg,
                       const std::string& out_dir, const std::string& coarse_weights, bool resume,
                       const ProgressFn& progress) {
  torch::manual_seed(cfg.seed);
  const auto seeds = dataset(data_dir);
  const int n = static_cast<int>(seeds.size());
  const Fold f = make_fold(n, fold);
  CoarseLogits logits{cfg, logit_sources(n, cfg, out_dir, coarse_weights), {}};
  std::map<std::string, std::string> orientation_of;
  std::vector<io::VolumeProperties> train_properties;
  if (progress) progress("fine: computing coarse logits (" + cfg.fine_logits + ")");
  const auto train =
      fine_slices(data_dir, f.train, seeds, cfg, logits, &orientation_of, &train_properties);
  const auto val = fine_slices(data_dir, f.val, seeds, cfg, logits, &orientation_of, nullptr);
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
  t.metadata[io::kOrientationKey] = common_orientation(orientation_of);
  t.metadata[io::kTrainingRangeKey] = range_of(train_properties, data_dir);
  t.dir = dir;
  t.model = net.get();
  t.n_items = static_cast<int>(items.size());
  t.epochs = cfg.fine_epochs;
  t.batch = cfg.fine_batch;
  t.lr = cfg.fine_lr;
  t.make_batch = [&](const std::vector<int>& idx, std::uint64_t seed) {
    return fine_batch(train, items, idx, seed, cfg);
  };
  t.loss = [&](const Batch& bt) { return segmentation_loss(net->forward(bt.a, bt.b), bt.y, cfg); };
  t.validate = [&] {
    double sum = 0;
    for (const auto& s : val) sum += dice_fg(net->forward(s.mr, s.unary).argmax(1), s.y);
    return sum / std::max<std::size_t>(1, val.size());
  };
  return run_task(t, cfg, resume, progress);
}

}  // namespace spineparse::tools::train
