// The Dice coefficient, the one formula behind the trainer's validation Dice
// (train/trainer), the per-case metrics (eval/metrics) and the demo's report
// (tools/cli/demo): here, below all of them, so none reaches up for it.
//   Dice = 2 |P ∩ G| / (|P| + |G|)   (= 2TP / (2TP + FP + FN));
//   both masks empty -> 1 (nothing to find, nothing found).
#pragma once

#include <cstddef>
#include <cstdint>

namespace lk {

// Voxel counts of a predicted mask P and a true mask G.
struct Overlap {
  int64_t pred = 0, truth = 0, both = 0;  // |P|, |G|, |P ∩ G|
  double dice() const {
    const int64_t sum = pred + truth;
    return sum == 0 ? 1.0 : 2.0 * static_cast<double>(both) / static_cast<double>(sum);
  }
};

// The masks `label == cls` of two label maps of n voxels.
template <class P, class T>
Overlap class_overlap(const P* pred, const T* truth, size_t n, int64_t cls) {
  Overlap o;
  for (size_t i = 0; i < n; ++i) {
    const bool p = static_cast<int64_t>(pred[i]) == cls, t = static_cast<int64_t>(truth[i]) == cls;
    o.pred += p;
    o.truth += t;
    o.both += p && t;
  }
  return o;
}

}  // namespace lk
