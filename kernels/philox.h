// Philox-4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as
// easy as 1, 2, 3", SC'11): a counter-based generator. A 128-bit counter and a
// 64-bit key give four independent 32-bit words; there is no state, so the CPU
// and the GPU draw identical numbers for the same (key, counter).
//
// One round: (hi0, lo0) = M0 * c0, (hi1, lo1) = M1 * c2 (full 64-bit products),
//            c' = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
// the key is bumped by the Weyl constants (W0, W1) between rounds; 10 rounds.
//
// Header-only, usable from plain C++ and from CUDA device code.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define LK_PHILOX_HD __host__ __device__ __forceinline__
#else
#define LK_PHILOX_HD inline
#endif

namespace lk {

struct Philox4x32 {
  uint32_t v[4];
};

inline constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
inline constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
inline constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
inline constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

// Philox-4x32-10 of counter (c0, c1, c2, c3) under key (k0, k1).
LK_PHILOX_HD Philox4x32 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                      uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  return Philox4x32{{c0, c1, c2, c3}};
}

// A uniform float in [0, 1) from the top 24 bits of a word (exact in float).
LK_PHILOX_HD float philox_uniform01(uint32_t w) { return static_cast<float>(w >> 8) * (1.0f / 16777216.0f); }
// A uniform float in (0, 1] (safe for log).
LK_PHILOX_HD float philox_uniform01_open0(uint32_t w) {
  return static_cast<float>((w >> 8) + 1u) * (1.0f / 16777216.0f);
}

}  // namespace lk
