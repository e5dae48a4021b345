#include "tests/support/random.h"

#include <random>
#include <vector>

namespace lk::test {

Tensor randn(const Shape& s, uint64_t seed, DType dt, double scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, scale);
  std::vector<double> v(shape_numel(s));
  for (double& x : v) x = d(rng);
  return Tensor::from_vector(v, s, dt);
}

Tensor uniform(const Shape& s, uint64_t seed, double lo, double hi, DType dt) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<double> v(shape_numel(s));
  for (double& x : v) x = d(rng);
  return Tensor::from_vector(v, s, dt);
}

Tensor random_labels(const Shape& s, int classes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> d(0, classes - 1);
  std::vector<int32_t> v(shape_numel(s));
  for (int32_t& x : v) x = d(rng);
  return Tensor::from_labels(v, s);
}

}  // namespace lk::test
