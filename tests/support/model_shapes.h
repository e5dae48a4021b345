// The paper model's shapes and cheap deterministic data, for the op table's
// benchmark cases (op_table.h): ResSE-LKA-UNet at training batch size, 4 input
// channels, 4 classes, five encoder levels (spatial size, channels).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace lk::test {

inline constexpr int64_t kBatch = 8;
inline constexpr int64_t kClasses = 4;
inline constexpr int64_t kImage = 128;

struct Level {
  int64_t hw, c;
  std::string str() const { return std::to_string(hw) + "x" + std::to_string(hw) + "x" + std::to_string(c); }
};
inline const std::vector<Level>& all_levels() {
  static const std::vector<Level> v{{128, 32}, {64, 64}, {32, 128}, {16, 256}, {8, 512}};
  return v;
}
// The three levels the CPU times the memory-bound ops at: top, middle, bottleneck.
inline bool key_level(const Level& l) { return l.hw == 128 || l.hw == 32 || l.hw == 8; }

inline Shape act_shape(int64_t n, const Level& l) { return {n, l.c, l.hw, l.hw}; }

// Uniform float32 values in [lo, hi) from a splitmix64 stream: deterministic
// per seed, element i the same at any batch size (a batch-n tensor is a prefix
// of the batch-8 one), and cheap enough for multi-megabyte tensors.
inline Tensor rand_tensor(const Shape& s, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  Tensor t = Tensor::empty(s);
  float* p = t.data<float>();
  uint64_t st = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  const float scale = (hi - lo) / 16777216.f;  // 2^24
  for (int64_t i = 0, n = t.numel(); i < n; ++i) {
    uint64_t z = (st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    p[i] = lo + static_cast<float>(z >> 40) * scale;
  }
  return t;
}

// Labels in [0, classes) from an xorshift stream.
inline Tensor rand_labels(const Shape& s, int64_t classes, uint64_t seed) {
  Tensor t = Tensor::empty(s, DType::I32);
  int32_t* p = t.data<int32_t>();
  uint64_t z = seed + 1;
  for (int64_t i = 0, n = t.numel(); i < n; ++i) {
    z ^= z << 13;
    z ^= z >> 7;
    z ^= z << 17;
    p[i] = static_cast<int32_t>(z % static_cast<uint64_t>(classes));
  }
  return t;
}

}  // namespace lk::test
