// One case of the generic layer check (run_layer_check in harness.h, dlib's
// test_layer, in float64): an op, its inputs and what may be differentiated.
// Here, apart from the Catch2 runner, so the op table (op_table.h) can list
// each op's shape grid.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace lk::test {

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

}  // namespace lk::test
