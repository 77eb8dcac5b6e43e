#include "io/dataset.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "io/ascii.hpp"
#include "io/case_attributes.hpp"
#include "io/dicom.hpp"
#include "io/header.hpp"
#include "io/volume_formats.hpp"
#include "io/volume_io.hpp"
#include "spineparse/files.hpp"
#include "spineparse/text.hpp"

namespace spineparse::io {
namespace fs = std::filesystem;

namespace {

// Entries of `dir` named like volumes, whatever they are (regular files, links, folders): an
// entry that cannot be read becomes a failed case rather than vanishing from the run.
std::vector<std::string> volumes_in(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec) throw std::runtime_error("cannot list " + dir.string() + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) throw std::runtime_error("cannot list " + dir.string() + ": " + ec.message());
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;  // hidden: temporary files of atomic writes
    if (is_volume_file(name)) out.push_back(it->path().string());
  }
  return out;
}

// Files grouped by case id (lower case for masks); an id named by two files is ambiguous.
using ByKey = std::map<std::string, std::vector<std::string>>;

std::string names_of(const std::vector<std::string>& files) {
  std::string s;
  for (std::size_t i = 0; i < files.size(); ++i)
    s += (i ? (i + 1 == files.size() ? " and " : ", ") : "") +
         fs::path(files[i]).filename().string();
  return s;
}

// One seed per image: its mask when there is exactly one, and a `problem` attribute (the case
// fails with it) for unreadable entries and ids or masks named by more than one file.
std::vector<CaseSeed> seeds_for(const ByKey& images, const ByKey& masks) {
  std::vector<CaseSeed> seeds;
  for (const auto& [id, files] : images) {
    for (const auto& f : files) {
      CaseSeed s;
      s.id = files.size() == 1 ? id : fs::path(f).filename().string();
      s.attrs[kImagePathAttr] = f;
      if (files.size() > 1)
        s.attrs[kProblemAttr] = "case id '" + id + "' is ambiguous: " + names_of(files) +
                             " both give it; remove or rename all but one";
      else if (auto p = file_problem(f); !p.empty())
        s.attrs[kProblemAttr] = f + ": " + p;
      auto m = masks.find(ascii_lower(id));
      if (m != masks.end() && m->second.size() == 1) s.attrs[kMaskPathAttr] = m->second[0];
      if (m != masks.end() && m->second.size() > 1 && !s.attrs.count(kProblemAttr))
        s.attrs[kProblemAttr] = "the mask of case '" + id + "' is ambiguous: " + names_of(m->second);
      seeds.push_back(s);
    }
  }
  return seeds;
}

}  // namespace

// One case per DICOM series under dir: the folder's name when the folder holds one image series
// (or nothing else), else "S<number>_<description>", and "<folder>_<file name>" for a file that
// is not a readable image; made unique against the other cases. Series that are not
// volumes, or whose SeriesDescription does not match `series_filter`, are listed with attr
// "skipped" (the reason).
void add_dicom_series(const std::string& dir, const std::string& series_filter,
                      std::vector<CaseSeed>& seeds) {
  const auto series = find_dicom_series(dir);
  std::map<std::string, int> images, entries;  // image series, and all, per folder
  for (const auto& s : series) {
    ++entries[s.folder];
    if (s.not_a_volume.empty()) ++images[s.folder];
  }
  std::set<std::string> taken;
  for (const auto& s : seeds) taken.insert(s.id);
  std::regex filter;
  if (!series_filter.empty()) {
    try {
      filter = std::regex(series_filter, std::regex::ECMAScript | std::regex::icase);
    } catch (const std::regex_error& e) {
      throw std::runtime_error("series filter '" + series_filter +
                               "' is not a regular expression: " + e.what());
    }
  }
  for (const auto& s : series) {
    const std::string folder = fs::path(s.folder).filename().string();
    std::string id;
    if (entries[s.folder] == 1 || (s.not_a_volume.empty() && images[s.folder] == 1))
      id = safe_name(folder);
    else if (s.uid.rfind("file:", 0) == 0)
      id = safe_name(folder + "_" + s.description);
    else
      id = safe_name("S" + s.number + "_" + s.description);
    if (id.empty()) id = "series";
    if (taken.count(id))
      id += "_" + safe_name(s.uid.substr(s.uid.size() > 8 ? s.uid.size() - 8 : 0));
    taken.insert(id);
    CaseSeed seed{id, {{kImagePathAttr, s.files.front()}, {kDicomSeriesAttr, s.uid}}};
    seed.attrs[kDicomFilesAttr] = file_list(s.files);
    seed.attrs["series_description"] = s.description;
    if (!s.not_a_volume.empty() && s.uid.rfind("file:", 0) == 0)
      seed.attrs[kSkippedAttr] = "DICOM file " + s.files.front() + ": " + s.not_a_volume;
    else if (!s.not_a_volume.empty())
      seed.attrs[kSkippedAttr] =
          "DICOM series " + s.number + " '" + s.description + "': " + s.not_a_volume;
    else if (!series_filter.empty() && !std::regex_search(s.description, filter))
      seed.attrs[kSkippedAttr] = "DICOM series " + s.number + " '" + s.description +
                              "' does not match the series filter '" + series_filter + "'";
    seeds.push_back(std::move(seed));
  }
}

std::vector<CaseSeed> list_dataset(const std::string& dir_in, const std::string& layout_in,
                                   const std::string& series_filter) {
  fs::path dir(dir_in);
  if (fs::is_regular_file(dir)) {  // one volume: one case, without a mask
    if (!is_volume_file(dir_in))
      throw std::runtime_error("input " + dir_in + " is a file but not a volume (" +
                               join(volume_extensions()) + ")");
    return {CaseSeed{volume_stem(dir_in), {{kImagePathAttr, dir_in}}}};
  }
  if (!fs::is_directory(dir))
    throw std::runtime_error("input " + dir_in + " does not exist (give a folder or a volume)");
  std::string layout = layout_in;
  if (layout == "auto")
    layout = fs::is_directory(dir / "original_mr") || dir.filename() == "original_mr" ? "original"
                                                                                      : "flat";
  ByKey images, masks;
  auto add_mask = [&](const std::string& m, bool need_prefix) {
    std::string stem = volume_stem(m);
    const bool prefixed = ascii_lower(stem).rfind("mask_", 0) == 0;
    if (prefixed) stem = stem.substr(5);
    if (prefixed || !need_prefix) masks[ascii_lower(stem)].push_back(m);
  };
  if (layout == "original") {
    const bool inside = !fs::is_directory(dir / "original_mr");
    const fs::path image_dir = inside ? dir : dir / "original_mr";
    const fs::path mask_dir = inside ? dir.parent_path() / "mask" : dir / "mask";
    if (!fs::is_directory(image_dir))
      throw std::runtime_error(dir_in + " has no original_mr folder (layout \"original\")");
    if (fs::is_directory(mask_dir))
      for (const auto& m : volumes_in(mask_dir)) add_mask(m, true);
    for (const auto& f : volumes_in(image_dir)) images[volume_stem(f)].push_back(f);
  } else {
    for (const char* sub : {"mask", "masks"})
      if (fs::is_directory(dir / sub))
        for (const auto& m : volumes_in(dir / sub)) add_mask(m, false);
    for (const auto& f : volumes_in(dir)) {
      if (ascii_lower(volume_stem(f)).rfind("mask_", 0) == 0)
        add_mask(f, true);
      else
        images[volume_stem(f)].push_back(f);
    }
  }
  for (auto& [id, files] : images) std::sort(files.begin(), files.end());
  std::vector<CaseSeed> seeds = seeds_for(images, masks);
  add_dicom_series(dir_in, series_filter, seeds);
  std::sort(seeds.begin(), seeds.end(),
            [](const CaseSeed& a, const CaseSeed& b) { return natural_less(a.id, b.id); });
  return seeds;
}

}  // namespace spineparse::io
