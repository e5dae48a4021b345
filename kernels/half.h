// The 16-bit storage types of mixed precision: bf16 (bfloat16: float's
// exponent, 7 mantissa bits) and f16 (IEEE half: 5 exponent bits, 10
// mantissa bits). Storage only: every kernel loads them into float, computes
// in float and rounds once on the way out (round to nearest even, NaN kept
// NaN, overflow to infinity). The same header serves the CPU code, the CUDA
// kernels under nvcc (host and device) and under the SIMT emulator, so a
// value converts identically everywhere; the bit layouts are those of
// cuDNN's CUDNN_DATA_BFLOAT16 / CUDNN_DATA_HALF (and __nv_bfloat16 / __half).
//
//   float f = x;               // bf16 / f16 -> float: exact
//   bf16 y = bf16(f);          // float -> bf16: rounded
//   static_cast<T>(f), static_cast<float>(t) work for T in {float, bf16, f16}.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define LK_HALF_HD __host__ __device__ __forceinline__
#else
#define LK_HALF_HD inline
#endif

namespace lk {

namespace half_detail {

LK_HALF_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

LK_HALF_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

LK_HALF_HD uint16_t f32_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);  // nearest even; overflow -> inf
}

LK_HALF_HD float bf16_to_f32(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

// IEEE half in software (the host, the emulator); the hardware conversion on
// a GPU gives the same bits.
inline uint16_t f32_to_f16_soft(float f) {
  const uint32_t x = float_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (ax >= 0x47800000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 2^16: infinity
  if (ax < 0x38800000u) {
    // Below 2^-14: a multiple of 2^-24 (subnormal); f * 2^24 is exact, then
    // rounded to the nearest integer, ties to even (1024 is the smallest normal).
    const float t = bits_float(ax) * 16777216.0f;
    uint32_t m = static_cast<uint32_t>(t);
    const float rest = t - static_cast<float>(m);
    if (rest > 0.5f || (rest == 0.5f && (m & 1u))) ++m;
    return static_cast<uint16_t>(sign | m);
  }
  const uint32_t e = (ax >> 23) - 127 + 15, mant = ax & 0x7fffffu;
  uint32_t h = (e << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is right (up to infinity)
  return static_cast<uint16_t>(sign | h);
}

inline float f16_to_f32_soft(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    const float v = static_cast<float>(m) * (1.0f / 16777216.0f);  // exact
    return sign ? -v : v;
  }
  if (e == 31) return bits_float(sign | 0x7f800000u | (m << 13));
  return bits_float(sign | ((e - 15 + 127) << 23) | (m << 13));
}

LK_HALF_HD uint16_t f32_to_f16(float f) {
#if defined(__CUDA_ARCH__)
  return __half_as_ushort(__float2half_rn(f));
#else
  return f32_to_f16_soft(f);
#endif
}

LK_HALF_HD float f16_to_f32(uint16_t h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(h));
#else
  return f16_to_f32_soft(h);
#endif
}

}  // namespace half_detail

struct bf16 {
  uint16_t bits;
  bf16() = default;
  LK_HALF_HD explicit bf16(float f) : bits(half_detail::f32_to_bf16(f)) {}
  LK_HALF_HD operator float() const { return half_detail::bf16_to_f32(bits); }
  LK_HALF_HD static bf16 from_bits(uint16_t b) {
    bf16 h;
    h.bits = b;
    return h;
  }
};

struct f16 {
  uint16_t bits;
  f16() = default;
  LK_HALF_HD explicit f16(float f) : bits(half_detail::f32_to_f16(f)) {}
  LK_HALF_HD operator float() const { return half_detail::f16_to_f32(bits); }
  LK_HALF_HD static f16 from_bits(uint16_t b) {
    f16 h;
    h.bits = b;
    return h;
  }
};

static_assert(sizeof(bf16) == 2 && sizeof(f16) == 2, "16-bit storage types");

// Explicit instantiation of a kernel template for every storage type.
#define LK_INSTANTIATE_STORAGE(MACRO) \
  MACRO(float)                        \
  MACRO(::lk::bf16)                   \
  MACRO(::lk::f16)

// The largest finite value of each (loss scaling, saturation checks).
inline constexpr float kF16Max = 65504.0f;

}  // namespace lk
