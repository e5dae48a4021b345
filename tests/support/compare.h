// The value-scaled error every test and benchmark compares with (one copy):
//   max |a - b| / max(max |b|, floor),  b the reference;
// +inf when a NaN appears or the sizes differ; with floor 0 and b all zero,
// the plain max |a - b|. Tensors on any device and of any dtype (read as
// double); the float vectors are what the emulator tests download.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "engine/tensor.h"

namespace lk::test {

template <class A, class B>
double scaled_error(const A* a, const B* b, size_t n, double floor) {
  double diff = 0, scale = floor;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    if (std::isnan(d)) return INFINITY;
    diff = std::max(diff, d);
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

// Tensors: the floor keeps values near zero (a gradient of ~0) from turning
// rounding noise into a large relative error.
inline double scaled_error(const Tensor& a, const Tensor& b, double floor = 1e-3) {
  if (a.shape() != b.shape()) return INFINITY;
  const std::vector<double> va = a.to_vector(), vb = b.to_vector();
  return scaled_error(va.data(), vb.data(), va.size(), floor);
}

// Kernel outputs against their reference, unfloored by default.
inline double scaled_error(const std::vector<float>& a, const std::vector<float>& b, double floor = 0) {
  if (a.size() != b.size()) return INFINITY;
  return scaled_error(a.data(), b.data(), a.size(), floor);
}

}  // namespace lk::test
