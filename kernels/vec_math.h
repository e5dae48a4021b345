// Elementwise math written so that GCC vectorises it inside `omp simd` loops
// (glibc's exp only vectorises under -ffast-math): the float exponential and
// sigmoid of the CPU kernels. Double stays on std::exp (the gradient checks).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace lk::cpu {

// e^x for x <= 0 in float: Cody-Waite range reduction x = n ln2 + r,
// |r| <= ln2/2, e^r by Cephes' degree-5 polynomial (about 1 ulp), times 2^n
// put into the exponent bits. Below -87.3 (where e^x leaves the normal range)
// it returns 0.
inline float exp_nonpositive(float x) {
  const bool under = x < -87.3f;
  x = under ? 0.f : x;
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const float scale = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return under ? 0.f : p * scale;
}

// 1 / (1 + e^-z), stable for large |z| (the exponential only sees -|z|).
inline float sigmoid(float z) {
  const float e = exp_nonpositive(-std::fabs(z));
  const float inv = 1.f / (1.f + e);
  return z >= 0.f ? inv : e * inv;
}
inline double sigmoid(double z) {
  const double e = std::exp(-std::abs(z));
  return z >= 0 ? 1 / (1 + e) : e / (1 + e);
}

}  // namespace lk::cpu
