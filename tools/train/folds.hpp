// Cross-validation folds (spec 1.3): for 215 cases exactly the original's (numpy RandomState(0)
// permutation, test = 43 per fold, val = the 4 smallest remaining ids), and the same rule for
// any other count: test = every fifth of the permutation, val = max(1, round(2% of n)) smallest
// remaining ids (4 for 215), train = the rest. Case ids are 1-based positions in the sorted list.
#pragma once

#include <cstdint>
#include <vector>

namespace spineparse::tools::train {

struct Fold {
  std::vector<int> train, val, test;  // 1-based case numbers, ascending
};

// numpy.random.RandomState(seed).permutation(n) (legacy MT19937 shuffle).
std::vector<int> numpy_permutation(int n, std::uint32_t seed);

// fold: 0..4. For n == 215 this reproduces the original's split files.
Fold make_fold(int n_cases, int fold, int n_folds = 5);

}  // namespace spineparse::tools::train
