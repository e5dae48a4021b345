#include "data/synth_noise.h"

#include <algorithm>
#include <cmath>

namespace lk::data::synth {

LatticeNoise::LatticeNoise(uint64_t key, const std::array<double, 3>& lo, const std::array<double, 3>& hi,
                           double cell)
    : lo_(lo), inv_cell_(1.0 / cell) {
  for (int a = 0; a < 3; ++a) n_[a] = static_cast<int64_t>(std::ceil((hi[a] - lo[a]) * inv_cell_)) + 2;
  v_.resize(static_cast<size_t>(n_[0] * n_[1] * n_[2]));
  for (int64_t k = 0; k < n_[2]; ++k)
    for (int64_t j = 0; j < n_[1]; ++j)
      for (int64_t i = 0; i < n_[0]; ++i)
        v_[static_cast<size_t>(i + n_[0] * (j + n_[1] * k))] =
            static_cast<float>(2.0 * u01(hash4(key, static_cast<uint64_t>(i), static_cast<uint64_t>(j),
                                               static_cast<uint64_t>(k))) - 1.0);
}

float LatticeNoise::at(double x, double y, double z) const {
  if (v_.size() == 1) return v_[0];  // default-constructed: constant 0
  const double p[3] = {x, y, z};
  int64_t i0[3];
  double w[3];
  for (int a = 0; a < 3; ++a) {  // every n_[a] >= 2
    const double t = std::clamp((p[a] - lo_[a]) * inv_cell_, 0.0, static_cast<double>(n_[a] - 1));
    i0[a] = std::min(static_cast<int64_t>(t), n_[a] - 2);
    const double u = t - static_cast<double>(i0[a]);
    w[a] = u * u * (3.0 - 2.0 * u);  // smoothstep weights: no visible lattice creases
  }
  const int64_t sy = n_[0], sz = n_[0] * n_[1];
  const float* c = &v_[static_cast<size_t>(i0[0] + sy * i0[1] + sz * i0[2])];
  auto lerp = [](double a, double b, double t) { return a + (b - a) * t; };
  const double x00 = lerp(c[0], c[1], w[0]), x10 = lerp(c[sy], c[sy + 1], w[0]);
  const double x01 = lerp(c[sz], c[sz + 1], w[0]), x11 = lerp(c[sz + sy], c[sz + sy + 1], w[0]);
  return static_cast<float>(lerp(lerp(x00, x10, w[1]), lerp(x01, x11, w[1]), w[2]));
}

}  // namespace lk::data::synth
