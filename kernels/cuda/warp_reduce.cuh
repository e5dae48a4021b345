// Warp-wide reductions, the one copy every kernel uses: an xor butterfly, so
// every lane ends with the same sum / minimum / maximum, combined in a fixed
// order (deterministic; lane 0's sum is the same, bit for bit, as a
// shfl_down tree's). All 32 lanes must take part.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/cuda/cuda_compat.cuh"

LK_CUDA_NAMESPACE_BEGIN

inline constexpr unsigned kFullWarpMask = 0xffffffffu;

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
  LK_UNROLL
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullWarpMask, v, o);
  return v;
}

__device__ __forceinline__ int64_t warp_min(int64_t v) {
  LK_UNROLL
  for (int o = 16; o > 0; o >>= 1) {
    const int64_t u = __shfl_xor_sync(kFullWarpMask, v, o);
    v = u < v ? u : v;
  }
  return v;
}

// The sum of v over a block of kThreads threads (a multiple of 32, at most
// 1024), valid in thread 0: each warp's warp_sum, then warp 0 adds those in
// warp order. `scratch`: kThreads / 32 floats of shared memory. Every thread
// of the block must call it; it holds two barriers, so scratch may be used
// again right after it returns.
template <int kThreads>
__device__ __forceinline__ float block_sum_in_thread0(float v, float* scratch) {
  constexpr int kWarps = kThreads / 32;
  const int tid = static_cast<int>(threadIdx.x);
  v = warp_sum(v);
  if ((tid & 31) == 0) scratch[tid >> 5] = v;
  __syncthreads();
  if (tid < 32) {
    v = tid < kWarps ? scratch[tid] : 0.f;
    v = warp_sum(v);
  }
  __syncthreads();
  return v;
}

// fminf / fmaxf: a NaN lane loses against a number.
__device__ __forceinline__ float warp_min(float v) {
  LK_UNROLL
  for (int o = 16; o > 0; o >>= 1) v = fminf(v, __shfl_xor_sync(kFullWarpMask, v, o));
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  LK_UNROLL
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullWarpMask, v, o));
  return v;
}

LK_CUDA_NAMESPACE_END
