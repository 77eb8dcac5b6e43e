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
  std::string expect;   // "ok", "warning" (ok, with a warning), "failed", "absent" (no case)
  std::string message;  // what the error or warning must contain ("" for ok/absent)
  // Writes the kind's files into the cohort folder; `id` is the case id to use.
  std::function<void(const std::filesystem::path& dir, const std::string& id)> make;
};

// Every kind. Volumes are small (at most 12 x 10 x 6 voxels), except those whose headers
// claim more, so the whole corpus runs in seconds.
std::vector<CorpusKind> corpus_kinds();

// A good case: a NIfTI-1 .nii.gz volume of 12 x 10 x 6 voxels with the given id.
void write_good_case(const std::filesystem::path& dir, const std::string& id);

}  // namespace spineparse::testing
