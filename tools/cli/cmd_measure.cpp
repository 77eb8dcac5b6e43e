// spineparse measure: per-level spine measurements of any label maps (a file or a folder).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "commands.hpp"
#include "io/volume_io.hpp"
#include "metrics/measure.hpp"
#include "spine/labels.hpp"
#include "spineparse/files.hpp"

namespace spineparse::tools::cli {
namespace fs = std::filesystem;

namespace {

struct MeasureJob {
  std::string id, labels, image;  // image: "" without
};

// The label maps to measure and, with --image, the MR of each (a file, or a folder paired by case
// key; a dataset folder's original_mr/ is used when present).
std::vector<MeasureJob> measure_jobs(const std::string& labels, const std::string& image) {
  std::vector<MeasureJob> jobs;
  auto id_of = [](const std::string& p) {
    std::string id = io::volume_stem(p);
    return id.rfind("seg_", 0) == 0 ? id.substr(4) : id;
  };
  if (!fs::is_directory(labels)) {
    if (!image.empty() && fs::is_directory(image))
      throw std::runtime_error("--image must be a file when LABELS is a file");
    jobs.push_back({id_of(labels), labels, image});
    return jobs;
  }
  std::map<std::string, std::string> images;
  if (!image.empty()) {
    if (!fs::is_directory(image))
      throw std::runtime_error("--image must be a folder when LABELS is a folder");
    fs::path dir = image;
    if (fs::is_directory(dir / "original_mr")) dir /= "original_mr";
    images = volumes_by_case(dir.string());
  }
  for (const auto& [key, path] : volumes_by_case(labels)) {
    MeasureJob j{id_of(path), path, ""};
    if (!image.empty()) {
      auto it = images.find(key);
      if (it == images.end())
        std::fprintf(stderr, "warning: %s has no image in %s; measured without intensities\n",
                     path.c_str(), image.c_str());
      else
        j.image = it->second;
    }
    jobs.push_back(j);
  }
  std::sort(jobs.begin(), jobs.end(),
            [](const MeasureJob& a, const MeasureJob& b) { return natural_less(a.id, b.id); });
  return jobs;
}

metrics::CaseMeasurement measure_one(const MeasureJob& j,
                                     const std::optional<std::array<std::uint8_t, 256>>& map) {
  auto L = io::read_labels(j.labels, map ? 255 : kMaxLabel);
  if (map) L.data = metrics::apply_label_map(*L.data, *map);
  std::optional<io::Volume> I;
  if (!j.image.empty()) {
    I = io::read_image(j.image);
    if (I->data->shape() != L.data->shape() || !I->geometry.same_as(L.geometry, 1e-3))
      throw std::runtime_error(j.image + " and " + j.labels + " are not on the same grid (" +
                               I->geometry.describe() + " vs " + L.geometry.describe() + ")");
  }
  return metrics::measure_case(j.id, *L.data, L.geometry, I ? I->data.get() : nullptr);
}

void print_case(const metrics::CaseMeasurement& m) {
  int measured = 0, grade = -1;
  std::string graded;
  for (const auto& l : m.levels) {
    measured += l.superior.valid;
    if (l.height_loss_grade > 0)
      graded += std::string(graded.empty() ? "" : ", ") + structure_name(l.label) + " grade " +
                std::to_string(l.height_loss_grade);
    grade = std::max(grade, l.height_loss_grade);
  }
  std::printf("%-14s %2d levels measured", m.id.c_str(), measured);
  if (!std::isnan(m.lordosis_l1_s1_deg))
    std::printf(", lordosis L1-S1 %.1f deg", m.lordosis_l1_s1_deg);
  if (!graded.empty()) std::printf(", height loss: %s", graded.c_str());
  std::printf("\n");
}

}  // namespace

void add_measure(CLI::App& app) {
  auto labels = std::make_shared<std::string>(), out = std::make_shared<std::string>(),
       image = std::make_shared<std::string>(), map_spec = std::make_shared<std::string>();
  auto* sub = app.add_subcommand(
      "measure",
      "Per-level spine measurements of label maps: heights, wedge, Genant grade, disc height "
      "index, segmental angles, lordosis (docs/measurements.md)");
  sub->add_option("labels", *labels, "a label map or a folder of them (seg_Case{i}.nii.gz, ...)")
      ->required()
      ->check(CLI::ExistingPath);
  sub->add_option("--output,-o", *out, "folder for measurements.csv, alignment.csv, summary.json")
      ->required();
  sub->add_option("--image", *image,
                  "the MR (a file, or a folder paired by case name) for intensities and signal "
                  "ratios")
      ->check(CLI::ExistingPath);
  sub->add_option("--labels-map", *map_spec,
                  "another tool's label values to ours (1 = S, 2-10 = L5..T9, 11-19 = L5/S.."
                  "T9/T10): 'src:dst,...' or a JSON file {\"src\": dst}; unlisted values -> 0");
  sub->callback([labels, out, image, map_spec] {
    run_command([&] {
      std::optional<std::array<std::uint8_t, 256>> map;
      if (!map_spec->empty()) map = metrics::parse_label_map(*map_spec);
      const auto jobs = measure_jobs(*labels, *image);
      if (jobs.empty()) throw std::runtime_error("no label maps in " + *labels);
      std::vector<metrics::CaseMeasurement> done;
      int failed = 0;
      for (const auto& j : jobs) {
        try {
          done.push_back(measure_one(j, map));
          print_case(done.back());
        } catch (const std::exception& e) {
          std::fprintf(stderr, "error: %s: %s\n", j.id.c_str(), e.what());
          ++failed;
        }
      }
      if (done.empty()) return 2;
      const auto summary = metrics::write_measurement_reports(done, *out);
      std::printf(
          "\nmeasured %zu of %zu cases; %s/measurements.csv, alignment.csv, "
          "summary.json\n",
          done.size(), jobs.size(), out->c_str());
      return failed ? 1 : 0;
    });
  });
}

}  // namespace spineparse::tools::cli
