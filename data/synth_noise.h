// Deterministic randomness for the synthetic generator: stateless hashing
// (so every voxel's value depends only on its key, never on thread order or
// on the standard library's distributions), a small sequential generator for
// per-case parameters, and smooth lattice ("value") noise in 3-D.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace lk::data::synth {

// splitmix64 finaliser: a well-mixed 64-bit hash of x.
constexpr uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
constexpr uint64_t hash2(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b)); }
constexpr uint64_t hash4(uint64_t a, uint64_t b, uint64_t c, uint64_t d) { return hash2(hash2(hash2(a, b), c), d); }

// [0, 1) from the top 53 bits.
inline double u01(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }
// Approximately standard normal from one hash: the sum of four 16-bit
// uniforms (Irwin-Hall), rescaled. Cheap, and exact enough for image noise.
inline float gauss(uint64_t h) {
  const double s = static_cast<double>((h & 0xFFFF) + ((h >> 16) & 0xFFFF) + ((h >> 32) & 0xFFFF) + (h >> 48));
  return static_cast<float>((s - 2.0 * 65535.0) / (65536.0 * 0.57735026918962576));  // sd of the sum: sqrt(4/12)
}

// Sequential generator for per-case parameters.
class Rng {
 public:
  explicit Rng(uint64_t key) : state_(mix64(key)) {}
  uint64_t next() { return mix64(state_ += 0x9E3779B97F4A7C15ull); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * u01(next()); }
  double normal() { return static_cast<double>(gauss(next())); }
  bool chance(double p) { return u01(next()) < p; }

 private:
  uint64_t state_;
};

// Smooth noise in about [-1, 1]: random values on a lattice every `cell`
// units over the box [lo, hi], interpolated trilinearly with smoothstep
// weights. Points outside the box are clamped onto it.
class LatticeNoise {
 public:
  LatticeNoise() = default;
  LatticeNoise(uint64_t key, const std::array<double, 3>& lo, const std::array<double, 3>& hi, double cell);
  float at(double x, double y, double z) const;

 private:
  std::array<double, 3> lo_{};
  double inv_cell_ = 1.0;
  std::array<int64_t, 3> n_{1, 1, 1};
  std::vector<float> v_{0.0f};
};

}  // namespace lk::data::synth
