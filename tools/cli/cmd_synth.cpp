// spineparse synth: a synthetic cohort of spine phantoms in the original layout.
#include <cstdio>

#include "commands.hpp"
#include "io/synth.hpp"

namespace spineparse::tools::cli {

void add_synth(CLI::App& app) {
  auto o = std::make_shared<io::SynthOptions>();
  auto out = std::make_shared<std::string>();
  auto size = std::make_shared<std::vector<int>>();
  auto slices = std::make_shared<std::vector<int>>();
  auto* sub = app.add_subcommand(
      "synth", "Make a synthetic cohort (phantoms with masks) in the original layout");
  sub->add_option("--cases,-n", o->cases, "number of cases")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  sub->add_option("--out,-o", *out, "output folder (gets original_mr/ and mask/)")->required();
  sub->add_option("--seed", o->seed, "random seed: the same seed gives the same cohort")
      ->capture_default_str();
  sub->add_option("--first", o->first_case, "number of the first case")->capture_default_str();
  sub->add_option("--size", *size, "in-plane size range MIN MAX (default 512 880)")->expected(2);
  sub->add_option("--slices", *slices, "slice count range MIN MAX (default 12 15)")->expected(2);
  sub->add_option("--slice-spacing", o->slice_spacing,
                  "slice spacing in mm (default: drawn per case, 3.6-4.6); the same anatomy over "
                  "the same slab, e.g. 1 for a thin-slice 3D acquisition")
      ->check(CLI::Range(0.0, 50.0));
  sub->add_option("--fractures", o->fracture_rate,
                  "share of the vertebrae L5-T9 drawn with a wedge fracture (anterior height "
                  "20-45 % lower, the disc above following it; default 0)")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_flag(
      "--seated-sacrum", o->seated_sacrum,
      "draw the L5/S disc as a wedge with the sacrum's plate on it, as in a real spine "
      "(default: the sacrum turned on its own, as in the demo models' first training cohort)");
  sub->add_flag("!--no-masks", o->masks, "write no masks");
  sub->add_option("--orientation", o->orientation,
                  "store the volumes in these axis codes (e.g. RAS, LPS; default PIL, the "
                  "training data's)");
  sub->callback([o, out, size, slices] {
    if (size->size() == 2) o->min_size = (*size)[0], o->max_size = (*size)[1];
    if (slices->size() == 2) o->min_slices = (*slices)[0], o->max_slices = (*slices)[1];
    run_command([&] {
      int done = 0;
      io::write_cohort(*o, *out, [&](const io::SynthSummary& s) {
        ++done;
        std::fprintf(stderr, "[%d/%d] %s %lldx%lldx%lld spacing %.3fx%.3fx%.2f mm, %d structures\n",
                     done, o->cases, s.id.c_str(), (long long)s.H, (long long)s.W, (long long)s.D,
                     s.geometry.spacing[0], s.geometry.spacing[1], s.geometry.spacing[2],
                     s.labels_present);
      });
      std::printf(
          "wrote %d cases to %s (original_mr/, mask/, cohort.json, truth_measurements.csv, "
          "truth_alignment.csv)\n",
          o->cases, out->c_str());
      return 0;
    });
  });
}

}  // namespace spineparse::tools::cli
