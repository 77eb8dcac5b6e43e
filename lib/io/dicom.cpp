#include "io/dicom.hpp"

#include <dcmtk/config/osconfig.h>  // before any other DCMTK header
#include <dcmtk/dcmdata/dcspchrs.h>
#include <gdcmScanner.h>
#include <gdcmTag.h>
#include <gdcmTrace.h>
#include <itkGDCMImageIO.h>
#include <itkImage.h>
#include <itkImageSeriesReader.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "io/ascii.hpp"
#include "io/dicom_check.hpp"
#include "io/dicom_enhanced.hpp"
#include "io/dicom_slices.hpp"
#include "io/volume_io.hpp"
#include "spineparse/files.hpp"

namespace spineparse::io {
namespace fs = std::filesystem;

namespace {

const gdcm::Tag kSeriesUid(0x0020, 0x000e), kSeriesNumber(0x0020, 0x0011),
    kDescription(0x0008, 0x103e), kModality(0x0008, 0x0060), kPosition(0x0020, 0x0032),
    kOrientation(0x0020, 0x0037), kRows(0x0028, 0x0010), kFrames(0x0028, 0x0008),
    kEcho(0x0018, 0x0086), kCharset(0x0008, 0x0005), kSopClass(0x0008, 0x0016),
    kSopInstance(0x0008, 0x0018);

// A text attribute in its file's SpecificCharacterSet (e.g. ISO_IR 100, Latin-1) as UTF-8, by
// DCMTK's conversion; as it is when the set is absent (ASCII), UTF-8 already, or not convertible.
std::string text_as_utf8(const std::string& text, const std::string& charset) {
  const bool ascii = std::all_of(text.begin(), text.end(),
                                 [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (ascii || charset.empty() || charset == "ISO_IR 192") return text;
  DcmSpecificCharacterSet converter;
  OFString out;
  if (converter.selectCharacterSet(OFString(charset.c_str())).bad() ||
      converter.convertString(text.c_str(), text.size(), out).bad())
    return text;
  return std::string(out.c_str(), out.length());
}

bool has_dicom_preamble(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  char magic[4] = {};
  return f.seekg(128) && f.read(magic, 4) && std::string(magic, 4) == "DICM";
}

// Named as DICOM files are (*.dcm, *.ima, *.dicom, DICOMDIR), whatever their content: such a
// file is listed (a skipped case with the reason) even when it is not readable DICOM.
bool named_like_dicom(const std::string& name) {
  const std::string n = ascii_lower(name);
  auto ends = [&](const std::string& e) { return n.size() > e.size() && ends_with(n, e); };
  return n == "dicomdir" || ends(".dcm") || ends(".ima") || ends(".dicom");
}

// Part 10 files (with the preamble) and files named like DICOM under dir (hidden folders and
// known volume files skipped), sorted.
std::vector<std::string> candidate_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.empty() && name[0] == '.') {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec) || is_volume_file(it->path().string())) continue;
    if (named_like_dicom(name) || (it->file_size(ec) >= 132 && has_dicom_preamble(it->path())))
      out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end(), natural_less);
  return out;
}

std::string trimmed(const char* v) {
  std::string s = v ? v : "";
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  while (!s.empty() && s.front() == ' ') s.erase(0, 1);
  return s;
}

std::string common_folder(const std::vector<std::string>& files) {
  fs::path common = fs::path(files.front()).parent_path();
  for (const auto& f : files)
    while (!common.empty() && fs::path(f).parent_path().string().rfind(common.string(), 0) != 0)
      common = common.parent_path();
  return common.string();
}

// Where each file's slice lies, as the scanner read it (values that are not finite numbers count
// as absent).
std::vector<Placed> placed_by(const gdcm::Scanner& s, const std::vector<std::string>& files) {
  std::vector<Placed> out;
  for (const auto& f : files) {
    Placed p{f};
    p.has_orientation =
        finite_numbers(trimmed(s.GetValue(f.c_str(), kOrientation)), 6, p.orientation.data());
    p.has_position =
        finite_numbers(trimmed(s.GetValue(f.c_str(), kPosition)), 3, p.position.data());
    out.push_back(p);
  }
  return out;
}

}  // namespace

std::string file_list(const std::vector<std::string>& files) {
  std::string text;
  for (const auto& f : files) text += (text.empty() ? "" : "\n") + f;
  return text;
}

std::vector<std::string> file_list(const std::string& text) {
  std::vector<std::string> files;
  std::istringstream lines(text);
  for (std::string f; std::getline(lines, f);) files.push_back(f);
  return files;
}

std::string safe_name(const std::string& s) {
  std::string out;
  for (char c : s) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    if (ok)
      out += c;
    else if (out.empty() || out.back() != '_')
      out += '_';
  }
  while (!out.empty() && (out.back() == '_' || out.back() == '.')) out.pop_back();
  while (!out.empty() && (out.front() == '_' || out.front() == '.')) out.erase(0, 1);
  return out.substr(0, 64);
}

namespace {

// A file listed as DICOM that is not a readable image: a skipped case of its own.
DicomSeries not_an_image(const std::string& f) {
  DicomSeries s;
  s.uid = "file:" + f;
  s.folder = fs::path(f).parent_path().string();
  s.description = fs::path(f).filename().string();
  s.files = {f};
  std::error_code ec;
  if (fs::path(f).filename() == "DICOMDIR")
    s.not_a_volume = "a DICOMDIR (the index of a DICOM medium), not an image series";
  else if (fs::file_size(f, ec) == 0)
    s.not_a_volume = "an empty file";
  else
    s.not_a_volume =
        "not readable as DICOM (" +
        std::string(has_dicom_preamble(f) ? "it has the Part 10 preamble" : "no Part 10 preamble") +
        ", but GDCM cannot parse it)";
  return s;
}

}  // namespace

std::vector<DicomSeries> find_dicom_series(const std::string& dir) {
  gdcm::Trace::WarningOff();  // GDCM's notes on unusual files would interleave with progress
  const auto files = candidate_files(dir);
  if (files.empty()) return {};
  gdcm::Scanner scanner;
  for (const auto& t : {kSeriesUid, kSeriesNumber, kDescription, kModality, kPosition, kOrientation,
                        kRows, kFrames, kEcho, kCharset, kSopClass, kSopInstance})
    scanner.AddTag(t);
  if (!scanner.Scan(files)) throw std::runtime_error("cannot scan the DICOM files in " + dir);
  // By series and echo: the echoes of an interleaved multi-echo series are separate volumes.
  std::map<std::string, DicomSeries> by_uid;
  std::map<std::string, std::set<std::string>> echoes_of, objects_of;
  std::vector<DicomSeries> unreadable;
  for (const auto& f : files) {
    if (!scanner.IsKey(f.c_str()) || fs::path(f).filename() == "DICOMDIR") {
      unreadable.push_back(not_an_image(f));
      continue;
    }
    const std::string uid = trimmed(scanner.GetValue(f.c_str(), kSeriesUid));
    const std::string echo = trimmed(scanner.GetValue(f.c_str(), kEcho));
    const std::string frames = trimmed(scanner.GetValue(f.c_str(), kFrames));
    // An Enhanced MR object is a volume of its own: a series may hold several (time points).
    const bool enhanced = is_enhanced_mr_class(trimmed(scanner.GetValue(f.c_str(), kSopClass)));
    const std::string object = enhanced ? trimmed(scanner.GetValue(f.c_str(), kSopInstance)) : "";
    echoes_of[uid].insert(echo);
    if (enhanced) objects_of[uid].insert(object);
    DicomSeries& s = by_uid[uid + '\n' + echo + '\n' + object];
    if (s.files.empty()) {
      s.uid = uid;
      s.echo = echo;
      s.number = trimmed(scanner.GetValue(f.c_str(), kSeriesNumber));
      s.description = text_as_utf8(trimmed(scanner.GetValue(f.c_str(), kDescription)),
                                   trimmed(scanner.GetValue(f.c_str(), kCharset)));
      s.modality = trimmed(scanner.GetValue(f.c_str(), kModality));
    }
    s.files.push_back(f);
    s.enhanced = enhanced;
    if (!scanner.GetValue(f.c_str(), kRows))
      s.not_a_volume = "no pixel data (" + (s.modality.empty() ? "?" : s.modality) + ")";
    else if (s.modality == "SEG")
      s.not_a_volume = "a segmentation (SEG), not an image series";
    else if (!enhanced && !frames.empty() && frames != "1")
      s.not_a_volume = "a multi-frame object (" + frames +
                       " frames in one file) of a class other than Enhanced MR: convert it to one "
                       "file per slice";
  }
  std::vector<DicomSeries> out = std::move(unreadable);
  for (auto& [key, s] : by_uid) {
    if (echoes_of[s.uid].size() > 1) s.description += " echo " + s.echo;
    if (objects_of[s.uid].size() > 1)  // named by file: their instance UIDs say nothing to a user
      s.description += " " + fs::path(s.files.front()).stem().string();
    s.folder = common_folder(s.files);
    if (s.enhanced) {  // one object, its frames placed by its functional groups when read
      out.push_back(std::move(s));
      continue;
    }
    if (s.not_a_volume.empty() && s.files.size() < 3)
      s.not_a_volume = std::to_string(s.files.size()) + " image(s): not a 3-D series";
    if (s.not_a_volume.empty()) {
      try {  // slice order now; a broken series fails its case when read
        std::vector<std::string> ordered;
        for (const auto& sl : slices_in_order(placed_by(scanner, s.files), "series"))
          ordered.push_back(sl.file);
        s.files = ordered;
      } catch (const std::exception&) {
      }
    }
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const DicomSeries& a, const DicomSeries& b) {
    if (a.folder != b.folder) return natural_less(a.folder, b.folder);
    return natural_less(a.number, b.number);
  });
  return out;
}

Volume read_dicom_series(const std::vector<std::string>& files, const ReadLimits& limits) {
  if (files.empty()) throw std::runtime_error("an empty DICOM series");
  if (files.size() == 1 && is_enhanced_mr_file(files[0])) return read_enhanced_mr(files[0], limits);
  const std::string what = "DICOM series in " + common_folder(files);
  // Every file checked before GDCM or ITK decodes it (what they would assert on or misread).
  std::vector<std::string> warnings;
  std::vector<Placed> placed;
  DicomFileFacts first;
  for (std::size_t i = 0; i < files.size(); ++i) {
    DicomFileFacts f;
    try {
      f = check_dicom_file_isolated(files[i]);
    } catch (const std::exception& e) {
      throw std::runtime_error(what + ": " + e.what());
    }
    if (i == 0) first = f;
    if (f.rows != first.rows || f.columns != first.columns ||
        f.bits_allocated != first.bits_allocated ||
        f.pixel_representation != first.pixel_representation)
      throw std::runtime_error(what + ": slices of different sizes or pixel types (" + files[i] +
                               " is " + std::to_string(f.rows) + "x" + std::to_string(f.columns) +
                               ", " + files[0] + " " + std::to_string(first.rows) + "x" +
                               std::to_string(first.columns) + ")");
    for (const auto& w : f.warnings)
      if (std::find(warnings.begin(), warnings.end(), w) == warnings.end()) warnings.push_back(w);
    placed.push_back({files[i], f.has_orientation, f.has_position, f.orientation, f.position});
  }
  const auto slices = slices_in_order(placed, what);
  if (limits.max_slices > 0 && static_cast<std::int64_t>(slices.size()) > limits.max_slices)
    throw std::runtime_error(
        what + ": " + std::to_string(slices.size()) +
        " slices, over the limit max_slices=" + std::to_string(limits.max_slices));
  using Image = itk::Image<float, 3>;
  init_itk();
  auto reader = itk::ImageSeriesReader<Image>::New();
  reader->SetImageIO(itk::GDCMImageIO::New());
  std::vector<std::string> ordered;
  for (const auto& s : slices) ordered.push_back(s.file);
  reader->SetFileNames(ordered);
  try {
    reader->UpdateOutputInformation();
    const auto size = reader->GetOutput()->GetLargestPossibleRegion().GetSize();
    const std::int64_t voxels = static_cast<std::int64_t>(size[0]) * size[1] * size[2];
    if (limits.max_voxels > 0 && voxels > limits.max_voxels)
      throw std::runtime_error(
          what + ": " + std::to_string(voxels) +
          " voxels, over the limit max_voxels=" + std::to_string(limits.max_voxels));
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    throw std::runtime_error(what + ": cannot read the series: " + e.GetDescription());
  }
  Image::Pointer img = reader->GetOutput();
  const auto size = img->GetLargestPossibleRegion().GetSize();
  const std::int64_t H = size[0], W = size[1], D = size[2];
  Volume v;
  for (int i = 0; i < 3; ++i) {
    v.geometry.spacing[i] = img->GetSpacing()[i];
    v.geometry.origin[i] = img->GetOrigin()[i];
    for (int j = 0; j < 3; ++j) v.geometry.direction[i * 3 + j] = img->GetDirection()[i][j];
  }
  auto arr = NdArray::make<float>({D, H, W});
  const float* in = img->GetBufferPointer();
  float* out = arr->data<float>();
  for (std::int64_t d = 0; d < D; ++d)
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t w = 0; w < W; ++w) out[(d * H + h) * W + w] = in[(d * W + w) * H + h];
  for (std::int64_t i = 0; i < arr->numel(); ++i)
    if (!std::isfinite(out[i])) throw std::runtime_error(what + ": non-finite voxels");
  v.data = arr;
  v.warnings = warnings;
  v.info.path = common_folder(files);
  v.info.dimensions = 3;
  v.info.size = {H, W, D};
  v.info.geometry = v.geometry;
  return v;
}

}  // namespace spineparse::io
