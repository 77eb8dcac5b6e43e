// The method's 20 classes (spec 1.2): 0 background, vertebrae 1 = S ... 10 = T9, discs
// 11 = L5/S ... 19 = T9/T10 (disc 10+k lies between vertebra k below and k+1 above).
#pragma once

#include <array>
#include <cstdint>

namespace spineparse {

constexpr int kNumClasses = 20;
constexpr int kMaxLabel = 19;

inline const char* structure_name(int label) {
  static const char* kNames[kNumClasses] = {"background", "S",      "L5",      "L4",      "L3",
                                            "L2",         "L1",     "T12",     "T11",     "T10",
                                            "T9",         "L5/S",   "L4/L5",   "L3/L4",   "L2/L3",
                                            "L1/L2",      "T12/L1", "T11/T12", "T10/T11", "T9/T10"};
  return label >= 0 && label < kNumClasses ? kNames[label] : "?";
}
inline bool is_vertebra(int label) { return label >= 1 && label <= 10; }
inline bool is_disc(int label) { return label >= 11 && label <= 19; }

// A structure's SNOMED CT code for DICOM objects (CID 7151 for the vertebrae); every disc is
// "Intervertebral disc" (its level is in the object's own label).
struct SnomedCode {
  const char* value;
  const char* meaning;
};
inline SnomedCode snomed_code(int label) {
  static const SnomedCode kVertebra[11] = {
      {"", ""},
      {"54735007", "Sacrum"},
      {"49668003", "L5 vertebra"},
      {"11994002", "L4 vertebra"},
      {"36470004", "L3 vertebra"},
      {"14293000", "L2 vertebra"},
      {"66794005", "L1 vertebra"},
      {"23215003", "T12 vertebra"},
      {"12989004", "T11 vertebra"},
      {"7610001", "T10 vertebra"},
      {"82687006", "T9 vertebra"}};
  if (is_vertebra(label)) return kVertebra[label];
  return {"80144004", "Intervertebral disc"};
}

// Whether a row of n labels holds a structure (1 .. kMaxLabel), in one loop compilers vectorise:
// lets a pass over a label map skip the rows of background, most of a scan's.
inline bool any_structure(const std::uint8_t* row, std::int64_t n) {
  int any = 0;
  for (std::int64_t i = 0; i < n; ++i) any |= static_cast<std::uint8_t>(row[i] - 1) < kMaxLabel;
  return any != 0;
}

// The voxels of each class among n labels; values past kMaxLabel count as background. Four
// tallies taken in turn, so that a run of one label does not wait on its own count.
inline std::array<std::int64_t, kNumClasses> label_counts(const std::uint8_t* l, std::int64_t n) {
  std::int64_t tally[4][256] = {};
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    ++tally[0][l[i]], ++tally[1][l[i + 1]], ++tally[2][l[i + 2]], ++tally[3][l[i + 3]];
  for (; i < n; ++i) ++tally[0][l[i]];
  std::array<std::int64_t, kNumClasses> count{};
  for (int v = 0; v < 256; ++v)
    count[v < kNumClasses ? v : 0] += tally[0][v] + tally[1][v] + tally[2][v] + tally[3][v];
  return count;
}

// The anatomical chain from the sacrum upward: S, L5/S, L5, L4/L5, ..., T9/T10, T9.
constexpr std::array<int, 19> kSpineChain = {1, 11, 2, 12, 3, 13, 4, 14, 5, 15,
                                             6, 16, 7, 17, 8, 18, 9, 19, 10};

}  // namespace spineparse
