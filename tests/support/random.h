// Seeded random tensors for tests and the op table (std::mt19937_64: the same
// values on every platform and run).
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace lk::test {

Tensor randn(const Shape& s, uint64_t seed, DType dt = DType::F64, double scale = 1.0);
Tensor uniform(const Shape& s, uint64_t seed, double lo, double hi, DType dt = DType::F64);
Tensor random_labels(const Shape& s, int classes, uint64_t seed);

}  // namespace lk::test
