#include "read_dataset.hpp"

#include <itkMultiThreaderBase.h>
#include <itkObject.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "io/case_attributes.hpp"
#include "io/dataset.hpp"
#include "io/dicom.hpp"
#include "io/volume_io.hpp"
#include "spineparse/files.hpp"

namespace spineparse::plugins::io {

using namespace spineparse::io;  // the library floor this group builds on
namespace fs = std::filesystem;

namespace {
// The voxels' range and how many are NaN or infinite (only counted: an image with any is refused,
// so they may sit in lo and hi), in 16 lanes that the compiler vectorises.
struct VoxelRange {
  std::int64_t non_finite = 0;
  float lo = INFINITY, hi = -INFINITY;
};
VoxelRange voxel_range(const float* x, std::int64_t n) {
  constexpr int kLanes = 16;
  float lo[kLanes], hi[kLanes];
  std::int64_t bad[kLanes] = {};
  std::fill(lo, lo + kLanes, INFINITY);
  std::fill(hi, hi + kLanes, -INFINITY);
  auto add = [&](int k, float v) {
    std::uint32_t u;
    std::memcpy(&u, &v, sizeof u);
    bad[k] += (u & 0x7f800000u) == 0x7f800000u;  // exponent all ones: infinite or NaN
    lo[k] = std::min(lo[k], v);                  // a NaN is never below or above: skipped
    hi[k] = std::max(hi[k], v);
  };
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int k = 0; k < kLanes; ++k) add(k, x[i + k]);
  for (int k = 0; i < n; ++i, ++k) add(k, x[i]);
  VoxelRange r;
  for (int k = 0; k < kLanes; ++k) {
    r.non_finite += bad[k];
    r.lo = std::min(r.lo, lo[k]);
    r.hi = std::max(r.hi, hi[k]);
  }
  return r;
}
}  // namespace

StageDescription read_dataset_description() {
  StageDescription d = describe<ReadDatasetOptions>(
      "Lists a dataset folder (original MRSpineSeg layout or flat) and reads each volume");
  d.is_source = true;
  d.writes = {{"image", false, "MR volume", "float32", "D,H,W"},
              {"mask", true, "ground truth, when the case has one", "uint8", "D,H,W"}};
  return d;
}

StageAttributes read_dataset_attributes() {
  StageAttributes a;
  a.writes = {{kImagePathAttr, false, "the volume's file (a DICOM series: its first file)"},
              {kMaskPathAttr, true, "the case's mask file, when the cohort has one"},
              {kDicomSeriesAttr, true, "the DICOM series instance UID"},
              {kDicomFilesAttr, true, "the DICOM series' files, one per line"},
              {"image_size", false, "H x W x D as read"},
              {kWarningsAttr, true, "what the reader found doubtful in the files"}};
  return a;
}

namespace {

// Outputs must never become inputs: an output folder that is a folder the volumes are listed
// from, or one above it, would make the next run read its own outputs (seg_Case1) as new cases.
void refuse_output_in_input(const std::vector<CaseSeed>& seeds, const std::string& output_dir) {
  if (output_dir.empty()) return;
  std::error_code ec;
  const fs::path out = fs::weakly_canonical(output_dir, ec);
  if (ec) return;
  std::set<fs::path> folders;
  for (const auto& s : seeds) {
    auto it = s.attrs.find("image_path");
    if (it != s.attrs.end()) folders.insert(fs::weakly_canonical(it->second, ec).parent_path());
  }
  for (const auto& f : folders) {
    const auto rel = f.lexically_relative(out);
    if (!rel.empty() && *rel.begin() != "..") {
      throw std::runtime_error("the output folder " + output_dir + " holds the input volumes (" +
                               f.string() + "): its outputs would be read as cases by the next " +
                               "run; give an --output outside the input folder");
    }
  }
}

}  // namespace

void ReadDataset::open(const StageContext& ctx) {
  // Cases are read concurrently, each call on the one core it holds (ITK's filters included).
  itk::MultiThreaderBase::SetGlobalDefaultNumberOfThreads(ctx.threads_now());
  itk::Object::GlobalWarningDisplayOff();
}

std::vector<CaseSeed> ReadDataset::enumerate(const StageContext& ctx) {
  std::string dir = options_.dir;
  if (dir.empty()) dir = ctx.input_dir;
  if (dir.empty()) {
    throw std::runtime_error("no input folder: give --input DIR or set the node's 'dir' parameter");
  }
  auto seeds = list_dataset(dir, options_.layout, options_.series);
  const auto& only = options_.cases;
  if (!only.empty()) {
    std::vector<CaseSeed> kept;
    for (const auto& id : only) {
      auto it =
          std::find_if(seeds.begin(), seeds.end(), [&](const CaseSeed& s) { return s.id == id; });
      if (it == seeds.end()) throw std::runtime_error("case '" + id + "' is not in " + dir);
      kept.push_back(*it);
    }
    seeds = kept;
  }
  if (seeds.empty()) throw std::runtime_error("no volumes found in " + dir);
  refuse_output_in_input(seeds, ctx.output_dir);
  return seeds;
}

CasePtr ReadDataset::process(const CasePtr& in) {
  if (auto problem = in->attr(kProblemAttr); !problem.empty()) throw std::runtime_error(problem);
  const std::string image_path = in->attr(kImagePathAttr);
  auto out = in->derive();
  const ReadLimits limits{options_.max_voxels, options_.max_slices};
  Volume v = in->attr(kDicomFilesAttr).empty()
                 ? read_image(image_path, limits)
                 : read_dicom_series(file_list(in->attr(kDicomFilesAttr)), limits);
  const auto& a = *v.data;
  const std::int64_t D = a.dim(0), H = a.dim(1), W = a.dim(2);
  const std::string dims = std::to_string(H) + "x" + std::to_string(W) + "x" + std::to_string(D);
  const auto [non_finite, lo, hi] = voxel_range(a.data<float>(), a.numel());
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

  const std::string mask_path = in->attr(kMaskPathAttr);
  if (!mask_path.empty() && options_.read_mask) {
    Volume m = read_labels(mask_path, 19, limits);
    for (auto& w : m.warnings) v.warnings.push_back("mask: " + w);
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
  for (const auto& w : v.warnings) add_warning(*out, w);
  return out;
}

}  // namespace spineparse::plugins::io
