// Global average pooling and 2-D max pooling, forward and backward (float).
#include <climits>

#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/pooling.h"
#include "kernels/cuda/warp_reduce.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kThreads = kPoolThreads;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kMaxGridY = 65535;
constexpr int64_t kMaxGridX = 1024;
// Global average pooling gives a plane the whole block from this size on
// when there are at most kBlockPerPlaneMaxPlanes planes.
constexpr int64_t kBlockPerPlaneMinHw = 4096;
constexpr int64_t kBlockPerPlaneMaxPlanes = 2048;

// kTpp threads per plane: 32 (a warp each) or kThreads (the block). Lane l
// sums elements l, l + kTpp, ... in order; a fixed tree combines the lanes.
template <int kTpp, typename T>
__global__ void __launch_bounds__(kThreads)
    global_avg_pool_fwd_kernel(int64_t planes, int64_t hw, const T* __restrict__ x, T* __restrict__ y) {
  static_assert(kTpp == 32 || kTpp == kThreads, "a warp or the block per plane");
  LK_SHARED(float, warp_sums, [kWarps]);
  constexpr int kGroups = kThreads / kTpp;
  const int tid = static_cast<int>(threadIdx.x);
  const int group = tid / kTpp, lane = tid % kTpp;
  const float count = static_cast<float>(hw);
  // Block-uniform loop (barriers inside when kTpp == kThreads).
  for (int64_t p0 = int64_t(blockIdx.x) * kGroups; p0 < planes; p0 += int64_t(gridDim.x) * kGroups) {
    const int64_t p = p0 + group;
    float acc = 0.f;
    if (p < planes) {
      const T* xp = x + p * hw;
      for (int64_t k = lane; k < hw; k += kTpp) acc += static_cast<float>(xp[k]);
    }
    if constexpr (kTpp == 32) {
      acc = warp_sum(acc);
      if (lane == 0 && p < planes) y[p] = static_cast<T>(acc / count);
    } else {
      acc = block_sum_in_thread0<kThreads>(acc, warp_sums);
      if (tid == 0) y[p] = static_cast<T>(acc / count);  // kGroups == 1: p == p0 < planes
    }
  }
}

// Grid: (chunks of the plane, planes), both grid-stride.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    global_avg_pool_bwd_kernel(int64_t planes, int64_t hw, const T* __restrict__ dy, T* __restrict__ dx,
                               bool accumulate) {
  const int64_t start = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = blockIdx.y; p < planes; p += gridDim.y) {
    const float g = static_cast<float>(dy[p]) / static_cast<float>(hw);
    T* dp = dx + p * hw;
    for (int64_t k = start; k < hw; k += step)
      dp[k] = static_cast<T>(accumulate ? static_cast<float>(dp[k]) + g : g);
  }
}

// The first maximum in visiting order; a NaN replaces anything (NaN propagates).
template <typename T>
__device__ __forceinline__ void take_max(const T* xp, int at, int& best, float& best_v) {
  const float v = static_cast<float>(xp[at]);
  if (v > best_v || v != v) {
    best = at;
    best_v = v;
  }
}

// One thread per output; K > 0 fixes the window at compile time (k_rt otherwise).
// Grid: (chunks of the output plane, planes), both grid-stride.
template <int K, typename T>
__global__ void __launch_bounds__(kThreads)
    max_pool2d_fwd_kernel(int64_t planes, int h, int w, int k_rt, int stride, int oh, int ow,
                          const T* __restrict__ x, T* __restrict__ y, int32_t* __restrict__ idx) {
  const int per_plane = oh * ow;
  const int start = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  const int step = static_cast<int>(gridDim.x * blockDim.x);
  for (int64_t p = blockIdx.y; p < planes; p += gridDim.y) {
    const T* xp = x + p * h * w;
    for (int o = start; o < per_plane; o += step) {
      const int oy = o / ow, ox = o - oy * ow;
      const int corner = oy * stride * w + ox * stride;
      int best = corner;
      float best_v = static_cast<float>(xp[corner]);
      if constexpr (K > 0) {
        LK_UNROLL
        for (int ky = 0; ky < K; ++ky) {
          LK_UNROLL
          for (int kx = 0; kx < K; ++kx) take_max(xp, corner + ky * w + kx, best, best_v);
        }
      } else {  // no unroll pragma on runtime trip counts
        for (int ky = 0; ky < k_rt; ++ky)
          for (int kx = 0; kx < k_rt; ++kx) take_max(xp, corner + ky * w + kx, best, best_v);
      }
      y[p * per_plane + o] = static_cast<T>(best_v);  // exact: one of the inputs
      idx[p * per_plane + o] = best;
    }
  }
}

// Non-overlapping windows: each output adds into its own window.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    max_pool2d_bwd_scatter_kernel(int64_t planes, int hw, int per_plane, const T* __restrict__ dy,
                                  const int32_t* __restrict__ idx, T* __restrict__ dx) {
  const int start = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  const int step = static_cast<int>(gridDim.x * blockDim.x);
  for (int64_t p = blockIdx.y; p < planes; p += gridDim.y) {
    const int32_t* ip = idx + p * per_plane;
    const T* gp = dy + p * per_plane;
    T* dp = dx + p * hw;
    for (int o = start; o < per_plane; o += step)
      dp[ip[o]] = static_cast<T>(static_cast<float>(dp[ip[o]]) + static_cast<float>(gp[o]));
  }
}

// Overlapping windows, or dx overwritten: each input pixel gathers from the
// outputs whose window covers it, in increasing output order (the CPU
// kernel's order); without accumulate a pixel no window picked gets 0.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    max_pool2d_bwd_gather_kernel(int64_t planes, int h, int w, int k, int stride, int oh, int ow,
                                 const T* __restrict__ dy, const int32_t* __restrict__ idx, T* __restrict__ dx,
                                 bool accumulate) {
  const int hw = h * w, per_plane = oh * ow;
  const int start = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  const int step = static_cast<int>(gridDim.x * blockDim.x);
  for (int64_t p = blockIdx.y; p < planes; p += gridDim.y) {
    const int32_t* ip = idx + p * per_plane;
    const T* gp = dy + p * per_plane;
    T* dp = dx + p * hw;
    for (int i = start; i < hw; i += step) {
      const int iy = i / w, ix = i - iy * w;
      // Windows oy*stride .. oy*stride + k - 1 containing iy.
      const int oy0 = iy >= k ? (iy - k + stride) / stride : 0, oy1 = min(iy / stride, oh - 1);
      const int ox0 = ix >= k ? (ix - k + stride) / stride : 0, ox1 = min(ix / stride, ow - 1);
      float v = 0.f;
      bool hit = false;
      for (int oy = oy0; oy <= oy1; ++oy)
        for (int ox = ox0; ox <= ox1; ++ox) {
          const int o = oy * ow + ox;
          if (ip[o] == i) {
            v = (hit ? v : accumulate ? static_cast<float>(dp[i]) : 0.f) + static_cast<float>(gp[o]);
            hit = true;
          }
        }
      if (hit) dp[i] = static_cast<T>(v);
      else if (!accumulate) dp[i] = static_cast<T>(0.f);
    }
  }
}

dim3 plane_grid(int64_t per_plane, int64_t planes) {
  const int64_t chunks = (per_plane + kThreads - 1) / kThreads;
  return dim3(static_cast<unsigned>(chunks < kMaxGridX ? chunks : kMaxGridX),
              static_cast<unsigned>(planes < kMaxGridY ? planes : kMaxGridY));
}

bool valid_pool(int64_t planes, int64_t h, int64_t w, int64_t k, int64_t stride) {
  return planes >= 0 && k >= 1 && stride >= 1 && h >= k && w >= k && h <= INT_MAX / w;
}

}  // namespace

template <typename T>
cudaError_t global_avg_pool_fwd(int64_t planes, int64_t hw, const T* x, T* y, cudaStream_t stream) {
  if (planes < 0 || hw < 0) return cudaErrorInvalidValue;
  if (planes == 0) return cudaSuccess;
  if (hw == 0) return cudaErrorInvalidValue;  // the mean of nothing
  if (hw >= kBlockPerPlaneMinHw && planes <= kBlockPerPlaneMaxPlanes)
    return LK_LAUNCH((global_avg_pool_fwd_kernel<kThreads, T>), planes, kThreads, 0, stream)(planes, hw, x, y);
  const int64_t blocks = (planes + kWarps - 1) / kWarps;
  return LK_LAUNCH((global_avg_pool_fwd_kernel<32, T>), blocks < kMaxGridY ? blocks : kMaxGridY, kThreads, 0, stream)(
      planes, hw, x, y);
}

template <typename T>
cudaError_t global_avg_pool_bwd(int64_t planes, int64_t hw, const T* dy, T* dx, cudaStream_t stream,
                                bool accumulate) {
  if (planes < 0 || hw < 0) return cudaErrorInvalidValue;
  if (planes == 0 || hw == 0) return cudaSuccess;
  return LK_LAUNCH(global_avg_pool_bwd_kernel<T>, plane_grid(hw, planes), kThreads, 0, stream)(planes, hw, dy, dx,
                                                                                             accumulate);
}

template <typename T>
cudaError_t max_pool2d_fwd(int64_t planes, int64_t h, int64_t w, int64_t k, int64_t stride, const T* x, T* y,
                           int32_t* idx, cudaStream_t stream) {
  if (!valid_pool(planes, h, w, k, stride)) return cudaErrorInvalidValue;
  if (planes == 0) return cudaSuccess;
  const int oh = static_cast<int>((h - k) / stride + 1), ow = static_cast<int>((w - k) / stride + 1);
  const dim3 grid = plane_grid(int64_t(oh) * ow, planes);
  const int hi = static_cast<int>(h), wi = static_cast<int>(w);
  const int ki = static_cast<int>(k), si = static_cast<int>(stride);
  if (k == 2)
    return LK_LAUNCH((max_pool2d_fwd_kernel<2, T>), grid, kThreads, 0, stream)(planes, hi, wi, ki, si, oh, ow, x, y, idx);
  if (k == 3)
    return LK_LAUNCH((max_pool2d_fwd_kernel<3, T>), grid, kThreads, 0, stream)(planes, hi, wi, ki, si, oh, ow, x, y, idx);
  return LK_LAUNCH((max_pool2d_fwd_kernel<0, T>), grid, kThreads, 0, stream)(planes, hi, wi, ki, si, oh, ow, x, y, idx);
}

template <typename T>
cudaError_t max_pool2d_bwd(int64_t planes, int64_t h, int64_t w, int64_t k, int64_t stride, const T* dy,
                           const int32_t* idx, T* dx, cudaStream_t stream, bool accumulate) {
  if (!valid_pool(planes, h, w, k, stride)) return cudaErrorInvalidValue;
  if (planes == 0) return cudaSuccess;
  const int oh = static_cast<int>((h - k) / stride + 1), ow = static_cast<int>((w - k) / stride + 1);
  const int hi = static_cast<int>(h), wi = static_cast<int>(w);
  if (stride >= k && accumulate)
    return LK_LAUNCH(max_pool2d_bwd_scatter_kernel<T>, plane_grid(int64_t(oh) * ow, planes), kThreads, 0, stream)(
        planes, hi * wi, oh * ow, dy, idx, dx);
  return LK_LAUNCH(max_pool2d_bwd_gather_kernel<T>, plane_grid(h * w, planes), kThreads, 0, stream)(
      planes, hi, wi, static_cast<int>(k), static_cast<int>(stride), oh, ow, dy, idx, dx, accumulate);
}

#define LK_INST(T)                                                                                             \
  template cudaError_t global_avg_pool_fwd<T>(int64_t, int64_t, const T*, T*, cudaStream_t);                      \
  template cudaError_t global_avg_pool_bwd<T>(int64_t, int64_t, const T*, T*, cudaStream_t, bool);                \
  template cudaError_t max_pool2d_fwd<T>(int64_t, int64_t, int64_t, int64_t, int64_t, const T*, T*, int32_t*,     \
                                         cudaStream_t);                                                           \
  template cudaError_t max_pool2d_bwd<T>(int64_t, int64_t, int64_t, int64_t, int64_t, const T*, const int32_t*, \
                                         T*, cudaStream_t, bool);
LK_INSTANTIATE_STORAGE(LK_INST)
#undef LK_INST

LK_CUDA_NAMESPACE_END
