#include "train/folds.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

namespace spineparse::tools::train {

using namespace spineparse::nn;  // the library floor training builds on

std::vector<int> numpy_permutation(int n, std::uint32_t seed) {
  // numpy's RandomState(seed) seeds MT19937 with init_genrand(seed), as std::mt19937 does; the
  // legacy shuffle draws j in [0, i] by masked rejection sampling of 32-bit outputs.
  std::mt19937 mt(seed);
  std::vector<int> a(n);
  for (int i = 0; i < n; ++i) a[i] = i;
  for (int i = n - 1; i > 0; --i) {
    std::uint32_t mask = static_cast<std::uint32_t>(i);
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    std::uint32_t j;
    while ((j = (mt() & mask)) > static_cast<std::uint32_t>(i)) {
    }
    std::swap(a[i], a[j]);
  }
  return a;
}

Fold make_fold(int n, int fold, int n_folds) {
  if (n < n_folds + 2)
    throw std::runtime_error("cross-validation needs at least " + std::to_string(n_folds + 2) +
                             " cases, got " + std::to_string(n));
  if (fold < 0 || fold >= n_folds)
    throw std::runtime_error("fold must be 1.." + std::to_string(n_folds));
  const auto perm = numpy_permutation(n, 0);
  // The original: test size n - train - val with train 168, val 4 for 215 (43 = 215 / 5).
  const int n_test = n / n_folds;
  const int n_val = n == 215 ? 4 : std::max(1, static_cast<int>(std::lround(0.02 * n)));
  Fold f;
  std::vector<bool> in_test(n, false);
  const int end =
      fold == n_folds - 1 ? n : (fold + 1) * n_test;  // the last fold takes the remainder
  for (int k = fold * n_test; k < end; ++k) in_test[perm[k]] = true;
  std::vector<int> rest;
  for (int i = 0; i < n; ++i) {
    if (in_test[i])
      f.test.push_back(i + 1);
    else
      rest.push_back(i + 1);
  }
  f.val.assign(rest.begin(), rest.begin() + n_val);
  f.train.assign(rest.begin() + n_val, rest.end());
  return f;
}

}  // namespace spineparse::tools::train
