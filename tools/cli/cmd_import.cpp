// spineparse import-checkpoint: an original trainer's best_checkpoint.pytorch -> safetensors.
#include <cstdio>

#include "commands.hpp"
#include "io/orientation.hpp"
#include "io/training_range.hpp"
#include "io/weights_metadata.hpp"
#include "nn/checkpoint.hpp"
#include "nn/networks.hpp"
#include "nn/safetensors.hpp"

namespace spineparse::tools::cli {

void add_import(CLI::App& app) {
  auto file = std::make_shared<std::string>();
  auto model = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto* sub = app.add_subcommand("import-checkpoint",
                                 "Convert a checkpoint saved by the original code (torch.save) to "
                                 "safetensors, without Python");
  sub->add_option("checkpoint", *file, "best_checkpoint.pytorch (or a torch.save'd state dict)")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--model", *model, "the network the checkpoint holds")
      ->required()
      ->check(CLI::IsMember({"gcsn", "deeplab", "resunet2d"}));
  sub->add_option("--out,-o", *out, "output .safetensors file")->required();
  auto orientation = std::make_shared<std::string>();
  sub->add_option("--orientation", *orientation,
                  "axis codes of the data the model was trained on (e.g. PIL for the original's "
                  "dataset); io.reorient then brings other scans to it. Without it inputs are "
                  "used as stored");
  auto data = std::make_shared<std::string>();
  sub->add_option("--training-data", *data,
                  "the original's dataset folder (original_mr/ with its cases): the training "
                  "range (slice and in-plane spacing, slice count, field of view) is measured on "
                  "it; without it the documented defaults for MRSpineSeg are recorded "
                  "(docs/training.md)")
      ->check(CLI::ExistingDirectory);
  sub->callback([file, model, out, orientation, data] {
    run_command([&] {
      std::string why;
      if (!orientation->empty() && !io::valid_axis_codes(*orientation, &why))
        throw std::runtime_error("--orientation " + why);
      auto ck = nn::read_checkpoint(*file);
      // Check every name, shape and dtype against the network before writing anything.
      if (*model == "resunet2d") {
        nn::ResUNet2d net;
        nn::load_state(*net, ck.state_dict, *file);
      } else {
        nn::Gcsn net(*model == "gcsn");
        nn::load_state(*net, ck.state_dict, *file);
      }
      std::map<std::string, std::string> meta = {
          {"source", *file}, {"model", *model}, {"format", "spineparse-1"}};
      for (const auto& [k, v] : ck.info) meta["checkpoint." + k] = v;
      if (!orientation->empty()) meta[io::kOrientationKey] = *orientation;
      meta[io::kTrainingRangeKey] =
          (data->empty() ? io::original_data_range()
                         : io::measure_training_range(*data, *orientation))
              .to_json();
      nn::save_safetensors(*out, ck.state_dict, meta);
      std::printf("wrote %s: %zu tensors (%s)", out->c_str(), ck.state_dict.size(), model->c_str());
      if (ck.info.count("epoch")) std::printf(", epoch %s", ck.info.at("epoch").c_str());
      if (ck.info.count("best_eval_score"))
        std::printf(", best_eval_score %s", ck.info.at("best_eval_score").c_str());
      std::printf("\n");
      return 0;
    });
  });
}

}  // namespace spineparse::tools::cli
