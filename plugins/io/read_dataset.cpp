#include "read_dataset.hpp"

#include <itkMultiThreaderBase.h>
#include <itkObject.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "spineparse/files.hpp"
#include "volume_io.hpp"

namespace spineparse::io {
namespace fs = std::filesystem;

StageDescription read_dataset_description() {
  StageDescription d;
  d.kind = "io.read_dataset";
  d.summary = "Lists a dataset folder (original MRSpineSeg layout or flat) and reads each volume";
  d.is_source = true;
  d.params = {
      {"dir", ParamType::kPath, ParamValue(std::string()), false,
       "dataset folder; empty: the run's --input"},
      {"layout", ParamType::kString, ParamValue(std::string("auto")), false,
       "original: DIR/original_mr + DIR/mask; flat: volumes in DIR; auto: detect",
       {"auto", "original", "flat"}},
      {"cases", ParamType::kStringList, ParamValue(std::vector<std::string>{}), false,
       "only these case ids (e.g. [\"Case3\", \"Case7\"]); empty: all"},
      {"read_mask", ParamType::kBool, ParamValue(true), false, "read masks when present"},
      {"max_voxels", ParamType::kInt, ParamValue(std::int64_t{64} * 1024 * 1024), false,
       "refuse volumes with more voxels", {}, 1.0, std::nullopt},
      {"max_slices", ParamType::kInt, ParamValue(std::int64_t{256}), false,
       "refuse volumes with more slices (array axis 2)", {}, 1.0, std::nullopt},
  };
  d.writes = {{"image", false, "float32 [D,H,W] MR volume"},
              {"mask", true, "uint8 [D,H,W] ground truth, when the case has one"}};
  return d;
}

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> volumes_in(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;  // hidden: temporary files of atomic writes
    if (e.is_regular_file() && is_volume_file(name)) out.push_back(e.path().string());
  }
  return out;
}

}  // namespace

std::vector<CaseSeed> list_dataset(const std::string& dir_in, const std::string& layout_in) {
  fs::path dir(dir_in);
  if (!fs::is_directory(dir)) throw std::runtime_error("dataset folder " + dir_in + " does not exist");
  std::string layout = layout_in;
  fs::path image_dir = dir, mask_dir;
  if (layout == "auto") {
    if (fs::is_directory(dir / "original_mr")) layout = "original";
    else if (dir.filename() == "original_mr") layout = "original";
    else layout = "flat";
  }
  std::vector<CaseSeed> seeds;
  if (layout == "original") {
    if (fs::is_directory(dir / "original_mr")) {
      image_dir = dir / "original_mr";
      mask_dir = dir / "mask";
    } else {
      image_dir = dir;
      mask_dir = dir.parent_path() / "mask";
    }
    if (!fs::is_directory(image_dir)) {
      throw std::runtime_error(dir_in + " has no original_mr folder (layout \"original\")");
    }
    std::map<std::string, std::string> masks;  // lower-case id -> path
    if (fs::is_directory(mask_dir)) {
      for (const auto& m : volumes_in(mask_dir)) {
        std::string stem = volume_stem(m);
        if (lower(stem).rfind("mask_", 0) == 0) masks[lower(stem.substr(5))] = m;
      }
    }
    for (const auto& f : volumes_in(image_dir)) {
      CaseSeed s;
      s.id = volume_stem(f);
      s.attrs["image_path"] = f;
      auto it = masks.find(lower(s.id));
      if (it != masks.end()) s.attrs["mask_path"] = it->second;
      seeds.push_back(s);
    }
  } else {
    std::map<std::string, std::string> masks;
    for (const char* sub : {"mask", "masks"}) {
      if (fs::is_directory(dir / sub)) {
        for (const auto& m : volumes_in(dir / sub)) {
          std::string stem = volume_stem(m);
          if (lower(stem).rfind("mask_", 0) == 0) stem = stem.substr(5);
          masks[lower(stem)] = m;
        }
      }
    }
    std::vector<std::string> images;
    for (const auto& f : volumes_in(dir)) {
      std::string stem = volume_stem(f);
      if (lower(stem).rfind("mask_", 0) == 0) masks[lower(stem.substr(5))] = f;
      else images.push_back(f);
    }
    std::set<std::string> ids;
    for (const auto& f : images) {
      CaseSeed s;
      s.id = volume_stem(f);
      if (!ids.insert(s.id).second) {
        // Same stem in two formats (Case1.nii and Case1.nrrd): keep both, distinguishable.
        s.id = fs::path(f).filename().string();
      }
      s.attrs["image_path"] = f;
      auto it = masks.find(lower(volume_stem(f)));
      if (it != masks.end()) s.attrs["mask_path"] = it->second;
      seeds.push_back(s);
    }
  }
  std::sort(seeds.begin(), seeds.end(),
            [](const CaseSeed& a, const CaseSeed& b) { return natural_less(a.id, b.id); });
  return seeds;
}

ReadDataset::ReadDataset(const Params& p) : params_(p) {}

void ReadDataset::open(const StageContext& ctx) {
  // Cases are read concurrently; each reader uses the per-case thread budget.
  itk::MultiThreaderBase::SetGlobalDefaultNumberOfThreads(std::max(1, ctx.threads_per_case));
  itk::Object::GlobalWarningDisplayOff();
}

std::vector<CaseSeed> ReadDataset::enumerate(const StageContext& ctx) {
  std::string dir = params_.get_string("dir");
  if (dir.empty()) dir = ctx.input_dir;
  if (dir.empty()) {
    throw std::runtime_error("no input folder: give --input DIR or set the node's 'dir' parameter");
  }
  auto seeds = list_dataset(dir, params_.get_string("layout"));
  const auto& only = params_.get_string_list("cases");
  if (!only.empty()) {
    std::vector<CaseSeed> kept;
    for (const auto& id : only) {
      auto it = std::find_if(seeds.begin(), seeds.end(), [&](const CaseSeed& s) { return s.id == id; });
      if (it == seeds.end()) throw std::runtime_error("case '" + id + "' is not in " + dir);
      kept.push_back(*it);
    }
    seeds = kept;
  }
  if (seeds.empty()) throw std::runtime_error("no volumes found in " + dir);
  return seeds;
}

CasePtr ReadDataset::process(const CasePtr& in) {
  const std::string image_path = in->attr("image_path");
  auto out = in->derive();
  Volume v = read_image(image_path);
  const auto& a = *v.data;
  const std::int64_t D = a.dim(0), H = a.dim(1), W = a.dim(2);
  const std::string dims = std::to_string(H) + "x" + std::to_string(W) + "x" + std::to_string(D);
  if (a.numel() > params_.get_int("max_voxels")) {
    throw std::runtime_error(image_path + " has " + std::to_string(a.numel()) + " voxels (" + dims +
                             "), over the limit max_voxels=" + std::to_string(params_.get_int("max_voxels")));
  }
  if (D > params_.get_int("max_slices")) {
    throw std::runtime_error(image_path + " has " + std::to_string(D) +
                             " slices, over the limit max_slices=" +
                             std::to_string(params_.get_int("max_slices")));
  }
  const float* x = a.data<float>();
  std::int64_t non_finite = 0;
  float lo = INFINITY, hi = -INFINITY;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    if (!std::isfinite(x[i])) {
      ++non_finite;
      continue;
    }
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  if (non_finite) {
    throw std::runtime_error(image_path + " has " + std::to_string(non_finite) +
                             " non-finite voxels (NaN or infinity)");
  }
  if (!(hi > lo)) {
    throw std::runtime_error(image_path + " is empty: every voxel is " + std::to_string(lo));
  }
  out->set("image", v.data);
  out->set_geometry(v.geometry);
  out->set_attr("image_size", dims);

  const std::string mask_path = in->attr("mask_path");
  if (!mask_path.empty() && params_.get_bool("read_mask")) {
    Volume m = read_labels(mask_path, 19);
    if (m.data->shape() != v.data->shape()) {
      const auto& ms = m.data->shape();
      throw std::runtime_error("mask " + mask_path + " is " + std::to_string(ms[1]) + "x" +
                               std::to_string(ms[2]) + "x" + std::to_string(ms[0]) + ", image " +
                               image_path + " is " + dims);
    }
    if (!m.geometry.same_as(v.geometry)) {
      throw std::runtime_error("mask " + mask_path + " (" + m.geometry.describe() +
                               ") does not share the geometry of " + image_path + " (" +
                               v.geometry.describe() + ")");
    }
    out->set("mask", m.data);
  }
  return out;
}

}  // namespace spineparse::io
