// TrainConfig: reading and writing the training configuration (JSON; unknown keys are errors).
#include <nlohmann/json.hpp>

#include "spineparse/files.hpp"
#include "train/training.hpp"

namespace spineparse::tools::train {

using namespace spineparse::nn;  // the library floor training builds on
using nlohmann::json;

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
      take(a, "fov_crop_p", c.augment.fov_crop_p);
      take(a, "fov_crop_max", c.augment.fov_crop_max);
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
  if (!(c.augment.fov_crop_p >= 0 && c.augment.fov_crop_p <= 1) ||
      !(c.augment.fov_crop_max >= 0 && c.augment.fov_crop_max <= 0.9)) {
    throw std::runtime_error("training config " + path +
                             ": augment/fov_crop_p is in [0, 1] and fov_crop_max in [0, 0.9]");
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
              {"contrast_p", augment.contrast_p},
              {"fov_crop_p", augment.fov_crop_p},
              {"fov_crop_max", augment.fov_crop_max}}}};
  return j.dump(2);
}

}  // namespace spineparse::tools::train
