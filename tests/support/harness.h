// Test helpers: seeded random tensors, value-scaled comparisons and the
// generic layer check (dlib's test_layer, in float64):
//   * outputs are NaN-poisoned before the op runs (the test main turns the
//     allocator's poisoning on), so an unwritten element fails the check;
//   * every input's gradient buffer is pre-filled with random values before
//     backward, and must come out as prefill + gradient (backward ADDS);
//   * analytic gradients are compared with central differences of
//     L = sum(f(x) * g) for a random upstream gradient g;
//   * the same op in float32 must match the float64 output.
#pragma once

#include "engine/ops.h"
#include "tests/support/compare.h"
#include "tests/support/layer_check.h"
#include "tests/support/random.h"

namespace lk::test {

bool all_finite(const Tensor& t);

// Selects a backend's kernel variant for a scope, then restores the previous one.
class VariantScope {
 public:
  VariantScope(Backend& b, KernelVariant v) : b_(b), prev_(b.variant()) { b.set_variant(v); }
  ~VariantScope() { b_.set_variant(prev_); }
  VariantScope(const VariantScope&) = delete;
  VariantScope& operator=(const VariantScope&) = delete;

 private:
  Backend& b_;
  KernelVariant prev_;
};

// Runs the whole check; reports failures through Catch2 assertions.
void run_layer_check(const LayerCheck& c);

}  // namespace lk::test
