// The method's 20 classes (spec 1.2): 0 background, vertebrae 1 = S ... 10 = T9, discs
// 11 = L5/S ... 19 = T9/T10 (disc 10+k lies between vertebra k below and k+1 above).
#pragma once

#include <array>

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

// The anatomical chain from the sacrum upward: S, L5/S, L5, L4/L5, ..., T9/T10, T9.
constexpr std::array<int, 19> kSpineChain = {1, 11, 2, 12, 3, 13, 4, 14, 5, 15,
                                             6, 16, 7, 17, 8, 18, 9, 19, 10};

}  // namespace spineparse
