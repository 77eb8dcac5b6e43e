// spineparse evaluate: score any folder of label maps against a folder of masks.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "io/volume_io.hpp"
#include "metrics/scores.hpp"
#include "spine/labels.hpp"
#include "spineparse/files.hpp"

namespace spineparse::tools::cli {
namespace fs = std::filesystem;

void add_evaluate(CLI::App& app) {
  auto pred = std::make_shared<std::string>(), truth = std::make_shared<std::string>(),
       out = std::make_shared<std::string>();
  auto no_dist = std::make_shared<bool>(false);
  auto* sub = app.add_subcommand(
      "evaluate", "Score label maps against masks (Dice, precision, recall, ASSD, HD95)");
  sub->add_option("--pred", *pred,
                  "folder of predicted label maps (seg_Case{i}.nii.gz or any names)")
      ->required()
      ->check(CLI::ExistingDirectory);
  sub->add_option(
         "--truth", *truth,
         "folder of masks (mask_case{i}.nii.gz, equal names, or a dataset folder with mask/)")
      ->required()
      ->check(CLI::ExistingDirectory);
  sub->add_option("--output,-o", *out,
                  "where metrics/cases.csv and metrics/summary.json go (default: --pred)");
  sub->add_flag("--no-distances", *no_dist, "skip ASSD and HD95");
  sub->callback([pred, truth, out, no_dist] {
    fs::path tdir = *truth;
    if (fs::is_directory(tdir / "mask")) tdir /= "mask";
    auto preds = volumes_by_case(*pred), truths = volumes_by_case(tdir.string());
    std::vector<metrics::CaseScores> all;
    int problems = 0;
    std::vector<std::pair<std::string, std::string>> pairs(preds.begin(), preds.end());
    std::sort(pairs.begin(), pairs.end(),
              [](const auto& a, const auto& b) { return natural_less(a.first, b.first); });
    for (const auto& [key, p] : pairs) {
      auto t = truths.find(key);
      if (t == truths.end()) {
        std::fprintf(stderr, "warning: %s has no mask in %s; not scored\n", p.c_str(),
                     tdir.c_str());
        continue;
      }
      try {
        auto P = io::read_labels(p, kMaxLabel), G = io::read_labels(t->second, kMaxLabel);
        if (P.data->shape() != G.data->shape())
          throw std::runtime_error(p + " and " + t->second + " differ in size");
        metrics::CaseScores cs;
        cs.id = io::volume_stem(p);
        if (cs.id.rfind("seg_", 0) == 0) cs.id = cs.id.substr(4);
        cs.structures = metrics::score_case(*P.data, *G.data, metrics::spacing_dhw(G.geometry),
                                            !*no_dist, &cs.confusion);
        std::printf("%-14s dice %.4f (vertebrae %.4f, discs %.4f)\n", cs.id.c_str(),
                    metrics::case_mean(cs.structures, &metrics::StructureScore::dice, "all"),
                    metrics::case_mean(cs.structures, &metrics::StructureScore::dice, "vertebrae"),
                    metrics::case_mean(cs.structures, &metrics::StructureScore::dice, "discs"));
        all.push_back(std::move(cs));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        ++problems;
      }
    }
    if (all.empty()) {
      std::fprintf(stderr, "error: no prediction in %s has a matching mask in %s\n", pred->c_str(),
                   tdir.c_str());
      return set_exit_code(2);
    }
    const fs::path folder = fs::path(out->empty() ? *pred : *out) / "metrics";
    auto j = nlohmann::json::parse(metrics::write_reports(all, folder.string()));
    auto show = [&](const char* k) {
      const auto& s = j["dice"][k];
      if (s["mean"].is_null()) return;
      std::printf("  %-10s %.4f +- %.4f\n", k, s["mean"].get<double>(), s["std"].get<double>());
    };
    std::printf("\nmean Dice over %zu cases:\n", all.size());
    show("vertebrae");
    show("discs");
    show("all");
    std::printf("missed structures: %d, spurious: %d\nreports: %s/cases.csv, %s/summary.json\n",
                j["missed_structures"].get<int>(), j["spurious_structures"].get<int>(),
                folder.c_str(), folder.c_str());
    set_exit_code(problems ? 1 : 0);
  });
}

}  // namespace spineparse::tools::cli
