// spineparse model-info: what a weights file says about its model (without loading it), and
// recording the range of scans it was trained on.
#include <cstdio>

#include "commands.hpp"
#include "io/training_range.hpp"
#include "io/weights_metadata.hpp"

namespace spineparse::tools::cli {

namespace {

void print_model_info(const std::string& path) {
  const auto meta = io::safetensors_metadata(path);
  std::printf("%s\n", path.c_str());
  for (const auto& [k, v] : meta)
    if (k != io::kTrainingRangeKey) std::printf("  %-24s %s\n", k.c_str(), v.c_str());
  auto it = meta.find(io::kTrainingRangeKey);
  if (it == meta.end()) {
    std::printf(
        "  training range: not recorded (scans are not checked against it; "
        "--training-data DIR records it)\n");
    return;
  }
  const auto r = io::TrainingRange::from_json(it->second, path);
  std::printf("  training range: %s\n", r.source.c_str());
  std::printf("    %-20s %10s %10s %10s\n", "property", "5 %", "median", "95 %");
  for (const auto& [name, p] : r.properties)
    std::printf("    %-20s %10.3g %10.3g %10.3g\n", name.c_str(), p.p5, p.median, p.p95);
}

}  // namespace

void add_model_info(CLI::App& app) {
  auto file = std::make_shared<std::string>();
  auto data = std::make_shared<std::string>();
  auto* sub = app.add_subcommand(
      "model-info",
      "Show what a weights file records about its model (orientation, training range), and "
      "record the training range measured on a dataset folder");
  sub->add_option("weights", *file, "a .safetensors weights file")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--training-data", *data,
                  "the cases the model was trained on (a dataset folder): their slice and "
                  "in-plane spacing, slice count and field of view are measured and recorded in "
                  "the weights file (rewritten atomically, tensors unchanged)")
      ->check(CLI::ExistingDirectory);
  sub->callback([file, data] {
    run_command([&] {
      if (!data->empty()) {
        const auto meta = io::safetensors_metadata(*file);
        auto o = meta.find(io::kOrientationKey);
        const auto r =
            io::measure_training_range(*data, o == meta.end() ? std::string() : o->second);
        io::set_safetensors_metadata(*file, {{io::kTrainingRangeKey, r.to_json()}});
        std::fprintf(stderr, "recorded the training range of %d cases in %s\n", r.cases,
                     file->c_str());
      }
      print_model_info(*file);
      return 0;
    });
  });
}

}  // namespace spineparse::tools::cli
