// Elementwise math written so that GCC vectorises it inside `omp simd` loops
// (glibc's exp only vectorises under -ffast-math): the float exponential and
// sigmoid of the CPU kernels. Double stays on std::exp (the gradient checks).
#pragma once

#include <cstring>
#include <cmath>
#include <cstdint>

namespace lk::cpu {

// e^x for x <= 0 in float: Cody-Waite range reduction x = n ln2 + r,
// |r| <= ln2/2, e^r by Cephes' degree-5 polynomial (about 1 ulp), times 2^n
// put into the exponent bits. Arguments below -87 are taken as -87 (e^-87
// is 1.6e-38, the smallest normal floats). No calls and no branches, so it
// vectorises.
inline float exp_nonpositive(float x) {
  x = x < -87.f ? -87.f : x;
  // n = round(x / ln2) by the 1.5 * 2^23 trick (std::floor does not
  // vectorise unless floating-point traps are off).
  const float n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// 1 / (1 + e^-z), stable for large |z| (the exponential only sees -|z|).
inline float sigmoid(float z) {
  const float e = exp_nonpositive(-std::fabs(z));
  const float num = z >= 0.f ? 1.f : e;
  return num / (1.f + e);
}
inline double sigmoid(double z) {
  const double e = std::exp(-std::abs(z));
  return z >= 0 ? 1 / (1 + e) : e / (1 + e);
}

}  // namespace lk::cpu
