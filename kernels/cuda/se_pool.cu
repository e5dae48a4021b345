// SE squeeze (global average pooling) and scale-apply, float: one warp per
// plane for small planes (kThreads / 32 planes per block), one block per plane
// for large ones. Reductions: per-thread strided sums, a xor shuffle tree, and
// (block mode) the warps' sums added in order by thread 0: deterministic.
#include <cstdint>

#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/se_pool.h"
#include "kernels/cuda/warp_reduce.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kThreads = kSePoolThreads;
constexpr int kWarps = kThreads / 32;

// Which plane this thread works on, its first element and its stride.
struct PlaneMap {
  int64_t plane;
  int first, step;
};
template <bool kWarp>
__device__ __forceinline__ PlaneMap plane_map() {
  if constexpr (kWarp)
    return {int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5), static_cast<int>(threadIdx.x & 31), 32};
  else
    return {int64_t(blockIdx.x), static_cast<int>(threadIdx.x), kThreads};
}

// The plane's sum of the threads' v, valid in the plane's first thread.
template <bool kWarp>
__device__ __forceinline__ float plane_sum(float v) {
  if constexpr (kWarp) {
    return warp_sum(v);
  } else {
    LK_SHARED(float, s_part, [kWarps]);
    v = warp_sum(v);
    if ((threadIdx.x & 31) == 0) s_part[threadIdx.x >> 5] = v;
    __syncthreads();
    float t = 0.f;
    if (threadIdx.x == 0)
      for (int i = 0; i < kWarps; ++i) t += s_part[i];
    return t;
  }
}

// In warp mode a warp past the last plane leaves at once (warp mode has no
// block barrier); in block mode every block has a plane.
template <bool kWarp>
__global__ void __launch_bounds__(kThreads)
    squeeze_fwd_kernel(int64_t planes, int64_t hw, const float* __restrict__ x, float* __restrict__ z) {
  const PlaneMap m = plane_map<kWarp>();
  if (kWarp && m.plane >= planes) return;
  const float* xp = x + m.plane * hw;
  float s = 0.f;
  for (int64_t i = m.first; i < hw; i += m.step) s += xp[i];
  s = plane_sum<kWarp>(s);
  if (m.first == 0) z[m.plane] = s / static_cast<float>(hw);
}

template <bool kWarp>
__global__ void __launch_bounds__(kThreads)
    squeeze_bwd_kernel(int64_t planes, int64_t hw, const float* __restrict__ dz, float* __restrict__ dx) {
  const PlaneMap m = plane_map<kWarp>();
  if (m.plane >= planes) return;
  const float g = __ldg(dz + m.plane) / static_cast<float>(hw);
  float* dp = dx + m.plane * hw;
  for (int64_t i = m.first; i < hw; i += m.step) dp[i] += g;
}

template <bool kWarp>
__global__ void __launch_bounds__(kThreads)
    scale_fwd_kernel(int64_t planes, int64_t hw, const float* __restrict__ x, const float* __restrict__ s,
                     float* __restrict__ y) {
  const PlaneMap m = plane_map<kWarp>();
  if (m.plane >= planes) return;
  const float sv = __ldg(s + m.plane);
  const float* xp = x + m.plane * hw;
  float* yp = y + m.plane * hw;
  for (int64_t i = m.first; i < hw; i += m.step) yp[i] = xp[i] * sv;
}

template <bool kWarp>
__global__ void __launch_bounds__(kThreads)
    scale_bwd_kernel(int64_t planes, int64_t hw, const float* __restrict__ dy, const float* __restrict__ x,
                     const float* __restrict__ s, const float* __restrict__ dz, float* __restrict__ dx,
                     float* __restrict__ ds) {
  const PlaneMap m = plane_map<kWarp>();
  if (kWarp && m.plane >= planes) return;
  const float sv = __ldg(s + m.plane);
  const float add = dz ? __ldg(dz + m.plane) / static_cast<float>(hw) : 0.f;
  const int64_t off = m.plane * hw;
  float acc = 0.f;
  for (int64_t i = m.first; i < hw; i += m.step) {
    const float g = dy[off + i];
    if (dx) dx[off + i] += g * sv + add;
    if (ds) acc += g * x[off + i];
  }
  if (!ds) return;  // uniform across the block: the barrier in plane_sum is skipped by all or none
  acc = plane_sum<kWarp>(acc);
  if (m.first == 0) ds[m.plane] += acc;
}

bool warp_mode(int64_t hw) { return hw <= kSePoolWarpMaxHw; }
unsigned grid_for(int64_t planes, int64_t hw) {
  return static_cast<unsigned>(warp_mode(hw) ? (planes + kWarps - 1) / kWarps : planes);
}

}  // namespace

cudaError_t se_squeeze_fwd(int64_t planes, int64_t hw, const float* x, float* z, cudaStream_t stream) {
  if (planes < 0 || hw < 0) return cudaErrorInvalidValue;
  if (planes == 0 || hw == 0) return cudaSuccess;
  const unsigned grid = grid_for(planes, hw);
  if (warp_mode(hw)) return LK_LAUNCH(squeeze_fwd_kernel<true>, grid, kThreads, 0, stream)(planes, hw, x, z);
  return LK_LAUNCH(squeeze_fwd_kernel<false>, grid, kThreads, 0, stream)(planes, hw, x, z);
}

cudaError_t se_squeeze_bwd(int64_t planes, int64_t hw, const float* dz, float* dx, cudaStream_t stream) {
  if (planes < 0 || hw < 0) return cudaErrorInvalidValue;
  if (planes == 0 || hw == 0) return cudaSuccess;
  const unsigned grid = grid_for(planes, hw);
  if (warp_mode(hw)) return LK_LAUNCH(squeeze_bwd_kernel<true>, grid, kThreads, 0, stream)(planes, hw, dz, dx);
  return LK_LAUNCH(squeeze_bwd_kernel<false>, grid, kThreads, 0, stream)(planes, hw, dz, dx);
}

cudaError_t se_scale_fwd(int64_t planes, int64_t hw, const float* x, const float* s, float* y, cudaStream_t stream) {
  if (planes < 0 || hw < 0) return cudaErrorInvalidValue;
  if (planes == 0 || hw == 0) return cudaSuccess;
  const unsigned grid = grid_for(planes, hw);
  if (warp_mode(hw)) return LK_LAUNCH(scale_fwd_kernel<true>, grid, kThreads, 0, stream)(planes, hw, x, s, y);
  return LK_LAUNCH(scale_fwd_kernel<false>, grid, kThreads, 0, stream)(planes, hw, x, s, y);
}

cudaError_t se_scale_bwd(int64_t planes, int64_t hw, const float* dy, const float* x, const float* s,
                         const float* dz, float* dx, float* ds, cudaStream_t stream) {
  if (planes < 0 || hw < 0) return cudaErrorInvalidValue;
  if (planes == 0 || hw == 0 || (!dx && !ds)) return cudaSuccess;
  const unsigned grid = grid_for(planes, hw);
  if (warp_mode(hw))
    return LK_LAUNCH(scale_bwd_kernel<true>, grid, kThreads, 0, stream)(planes, hw, dy, x, s, dz, dx, ds);
  return LK_LAUNCH(scale_bwd_kernel<false>, grid, kThreads, 0, stream)(planes, hw, dy, x, s, dz, dx, ds);
}

LK_CUDA_NAMESPACE_END
