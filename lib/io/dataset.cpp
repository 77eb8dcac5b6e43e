#include "io/dataset.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <set>

#include "io/volume_io.hpp"
#include "spineparse/files.hpp"

namespace spineparse::io {
namespace fs = std::filesystem;

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
  if (!fs::is_directory(dir))
    throw std::runtime_error("dataset folder " + dir_in + " does not exist");
  std::string layout = layout_in;
  fs::path image_dir = dir, mask_dir;
  if (layout == "auto") {
    if (fs::is_directory(dir / "original_mr"))
      layout = "original";
    else if (dir.filename() == "original_mr")
      layout = "original";
    else
      layout = "flat";
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
      if (lower(stem).rfind("mask_", 0) == 0)
        masks[lower(stem.substr(5))] = f;
      else
        images.push_back(f);
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

}  // namespace spineparse::io
