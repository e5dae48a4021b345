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

#include <functional>
#include <string>
#include <vector>

#include "engine/ops.h"

namespace lk::test {

Tensor randn(const Shape& s, uint64_t seed, DType dt = DType::F64, double scale = 1.0);
Tensor uniform(const Shape& s, uint64_t seed, double lo, double hi, DType dt = DType::F64);
Tensor random_labels(const Shape& s, int classes, uint64_t seed);

// max |a - b| / max(max |b|, floor): the value-scaled error used everywhere.
double scaled_error(const Tensor& a, const Tensor& b, double floor = 1e-3);
bool all_finite(const Tensor& t);

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

struct LayerCheck {
  std::string name;
  std::vector<Tensor> inputs;     // float64 values; integer inputs pass through
  std::vector<bool> differentiable;
  OpFn fn;
  double step = 1e-6;             // central-difference step
  double grad_tol = 1e-6;         // scaled error, analytic vs numeric
  double f32_tol = 1e-4;          // scaled error, float32 vs float64 output
  int max_probes = 24;            // numeric probes per input (random elements)
};

// Runs the whole check; reports failures through Catch2 assertions.
void run_layer_check(const LayerCheck& c);

}  // namespace lk::test
