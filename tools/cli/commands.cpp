#include "commands.hpp"

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "build_paths.hpp"
#include "io/ascii.hpp"
#include "io/volume_io.hpp"
#include "spineparse/files.hpp"
#include "spineparse/registry.hpp"

namespace spineparse::tools::cli {
namespace fs = std::filesystem;

namespace {
int g_exit_code = 0;
}

int exit_code() { return g_exit_code; }
void set_exit_code(int code) { g_exit_code = code; }

void run_command(const std::function<int()>& body) {
  try {
    set_exit_code(body());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    set_exit_code(2);
  }
}

bool load_default_plugins(Registry& registry, const std::vector<std::string>& extra_folders) {
  std::vector<std::string> errors;
  auto folders = default_plugin_folders();
  folders.insert(folders.end(), extra_folders.begin(), extra_folders.end());
  for (const auto& f : folders) registry.load_folder(f, &errors);
  for (const auto& e : errors) std::fprintf(stderr, "error: %s\n", e.c_str());
  return errors.empty();
}

std::string data_dir() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path installed =
        (exe.parent_path() / SPINEPARSE_DATA_DIR_FROM_BIN).lexically_normal();
    if (fs::is_directory(installed / "graphs", ec)) return installed.string();
  }
  return SPINEPARSE_SOURCE_DIR;
}

namespace {

// How many cases of run.json carry warnings, with the first few.
void print_warnings(const fs::path& run_json) {
  if (!fs::exists(run_json)) return;
  try {
    const auto j = nlohmann::json::parse(read_file(run_json.string()));
    int with = 0;
    std::vector<std::string> shown;
    for (const auto& c : j["cases"]) {
      if (!c.contains("warnings")) continue;
      ++with;
      if (shown.size() < 3)
        shown.push_back(c["id"].get<std::string>() + ": " + c["warnings"][0].get<std::string>());
    }
    if (with == 0) return;
    std::printf("warnings: %d of %zu cases (run.json \"warnings\", the report), e.g.\n", with,
                j["cases"].size());
    for (const auto& w : shown) std::printf("  %s\n", w.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: cannot read %s: %s\n", run_json.c_str(), e.what());
  }
}

}  // namespace

namespace {
// One line from metrics.measure's summary: cases, median lordosis, outliers, where the files are.
void print_measurements(const fs::path& summary) {
  if (!fs::exists(summary)) return;
  try {
    const auto j = nlohmann::json::parse(read_file(summary.string()));
    std::printf("measurements of %d cases", j["cases"].get<int>());
    const auto& a = j["alignment"];
    if (a.contains("lordosis_l1_s1_deg"))
      std::printf(": lordosis L1-S1 median %.1f deg (IQR %.1f to %.1f)",
                  a["lordosis_l1_s1_deg"]["median"].get<double>(),
                  a["lordosis_l1_s1_deg"]["q1"].get<double>(),
                  a["lordosis_l1_s1_deg"]["q3"].get<double>());
    std::printf(", %zu outlier values; %s\n", j["outliers"].size(),
                (summary.parent_path() / "measurements.csv").c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: cannot read %s: %s\n", summary.c_str(), e.what());
  }
}
}  // namespace

namespace {
// One line from metrics.qc's review.csv: the verdicts counted, and where the list is.
void print_qc(const fs::path& review) {
  if (!fs::exists(review)) return;
  std::istringstream lines(read_file(review.string()));
  std::string line;
  std::getline(lines, line);  // header
  std::map<std::string, int> n;
  while (std::getline(lines, line)) {
    std::size_t comma = 0;
    if (!line.empty() && line[0] == '"') {  // a quoted case id
      for (comma = 1; comma < line.size(); ++comma)
        if (line[comma] == '"' && (comma + 1 == line.size() || line[comma + 1] != '"')) break;
      ++comma;
    } else {
      comma = line.find(',');
    }
    if (comma == std::string::npos || comma >= line.size()) continue;
    ++n[line.substr(comma + 1, line.find(',', comma + 1) - comma - 1)];
  }
  std::printf("qc: %d pass, %d review, %d fail; worst first: %s\n", n["pass"], n["review"],
              n["fail"], review.c_str());
}
}  // namespace

void print_run_products(const std::string& output_dir) {
  const fs::path dir(output_dir);
  // When the graph evaluated, the per-structure Dice table and where the reports are.
  const fs::path summary = dir / "metrics" / "summary.json";
  if (fs::exists(summary)) {
    try {
      auto j = nlohmann::json::parse(read_file(summary.string()));
      auto ms = [](const nlohmann::json& s) {
        if (s["mean"].is_null()) return std::string("   -");
        char b[64];
        std::snprintf(b, sizeof b, "%.4f +- %.4f", s["mean"].get<double>(), s["std"].get<double>());
        return std::string(b);
      };
      std::printf("\nDice per structure (%d cases with masks):\n", j["cases_scored"].get<int>());
      for (const auto& p : j["per_structure"]) {
        if (p["cases_with_structure"].get<int>() == 0 && p["dice"]["mean"].is_null()) continue;
        std::printf("  %2d %-8s %s\n", p["label"].get<int>(),
                    p["structure"].get<std::string>().c_str(), ms(p["dice"]).c_str());
      }
      std::printf("  vertebrae   %s\n  discs       %s\n  all 19      %s\n",
                  ms(j["dice"]["vertebrae"]).c_str(), ms(j["dice"]["discs"]).c_str(),
                  ms(j["dice"]["all"]).c_str());
      if (j.contains("refinement")) {
        std::printf("  before refinement %s\n", ms(j["refinement"]["dice_before"]).c_str());
      }
      std::printf("metrics: %s\n", (dir / "metrics").c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "warning: cannot read %s: %s\n", summary.c_str(), e.what());
    }
  }
  print_measurements(dir / "measurements" / "summary.json");
  print_qc(dir / "qc" / "review.csv");
  print_warnings(dir / "run.json");
  if (fs::exists(dir / "report.html")) std::printf("report: %s\n", (dir / "report.html").c_str());
}

std::string case_key(const std::string& path) {
  const std::string s = io::ascii_lower(io::volume_stem(path));
  for (const char* p : {"seg_", "mask_"}) {
    if (s.rfind(p, 0) == 0) return s.substr(std::string(p).size());
  }
  return s;
}

std::map<std::string, std::string> volumes_by_case(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && name[0] != '.' && io::is_volume_file(name))
      out[case_key(name)] = e.path().string();
  }
  return out;
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789_-+=.,/:@%") == std::string::npos)
    return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

void add_commands(CLI::App& app) {
  add_run(app);
  add_validate(app);
  add_stages(app);
  add_synth(app);
  add_evaluate(app);
  add_measure(app);
  add_bench(app);
  add_merge(app);
  add_serve(app);
  add_slurm(app);
  add_model_info(app);
#ifdef SPINEPARSE_WITH_TORCH
  add_calibrate(app);
  add_import(app);
  add_train(app);
  add_slurm_train(app);
#endif
}

}  // namespace spineparse::tools::cli
