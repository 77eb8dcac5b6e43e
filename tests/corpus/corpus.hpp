// The bad-input corpus: kinds of bad or unusual files, each written into a cohort folder beside
// good cases, with the outcome the reader must give it. Generated at test time; nothing binary
// is committed.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace spineparse::testing {

struct CorpusKind {
  std::string name;     // also the case id (or the id's prefix for kinds with several files)
  // "ok", "warning" (ok, with a warning), "failed", "skipped" (listed, not run), "ok,skipped"
  // (several cases, each ok or skipped, both present), "absent" (no case)
  std::string expect;
  std::string message;  // what the error, warning or skip reason must contain ("" for ok/absent)
  // Writes the kind's files into the cohort folder; `id` is the case id to use.
  std::function<void(const std::filesystem::path& dir, const std::string& id)> make;
  int min_records = 1;  // cases the kind must give (a folder of several DICOM series gives more)
};

// Every kind. Volumes are small (at most 12 x 10 x 6 voxels), except those whose headers
// claim more, so the whole corpus runs in seconds.
std::vector<CorpusKind> corpus_kinds();

// The DICOM kinds (dicom_kinds.cpp): each a folder named by the kind, its cases found by their
// files' paths; and NIfTI-1 and Analyze 7.5 .hdr/.img pairs.
std::vector<CorpusKind> dicom_kinds();
std::vector<CorpusKind> analyze_pair_kinds();

// A good case: a NIfTI-1 .nii.gz volume of 12 x 10 x 6 voxels with the given id.
void write_good_case(const std::filesystem::path& dir, const std::string& id);

}  // namespace spineparse::testing
