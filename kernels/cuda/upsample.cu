// Nearest and bilinear (align_corners=False) upsampling by an integer factor,
// forward and gather backward (float). Kernels are instantiated for f = 2, 4,
// 8 (divisions by constants) and for any f (F = 0).
#include <climits>

#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/upsample.h"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kThreads = kUpsampleThreads;
constexpr int64_t kMaxGridX = 1024;
constexpr int64_t kMaxGridY = 65535;

// The bilinear taps of output coordinate o along an axis of n inputs:
// src = (o + 0.5) / f - 0.5 clamped at 0, i0 = floor(src), i1 = min(i0 + 1, n - 1),
// l1 = src - i0 (the weight of i1). Exact: 2f * src = 2o + 1 - f. src < n - 0.5,
// so i0 <= n - 1 without a clamp.
struct Tap {
  int i0, i1;
  float l1;
};
__device__ __forceinline__ Tap bilinear_tap(int o, int n, int f) {
  const int num = 2 * o + 1 - f;
  Tap t;
  if (num <= 0) {
    t.i0 = 0;
    t.l1 = 0.f;
  } else {
    t.i0 = num / (2 * f);
    t.l1 = static_cast<float>(num - t.i0 * 2 * f) / static_cast<float>(2 * f);
  }
  t.i1 = min(t.i0 + 1, n - 1);
  return t;
}

// The weight with which output coordinate o reads input i (0 when it does not).
__device__ __forceinline__ bool bilinear_weight(int o, int i, int n, int f, float& wt) {
  const Tap t = bilinear_tap(o, n, f);
  wt = (t.i0 == i ? 1.f - t.l1 : 0.f) + (t.i1 == i ? t.l1 : 0.f);
  return t.i0 == i || t.i1 == i;
}

// One thread per output. Grid: (chunks of the output plane, planes), both grid-stride.
template <int F, bool kBilinear, typename T>
__global__ void __launch_bounds__(kThreads)
    upsample_fwd_kernel(int64_t planes, int h, int w, int f_rt, const T* __restrict__ x, T* __restrict__ y) {
  const int f = F > 0 ? F : f_rt;
  const int ow = w * f, per_plane = h * f * ow;
  const int start = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  const int step = static_cast<int>(gridDim.x * blockDim.x);
  for (int64_t p = blockIdx.y; p < planes; p += gridDim.y) {
    const T* xp = x + p * h * w;
    T* yp = y + p * per_plane;
    for (int o = start; o < per_plane; o += step) {
      const int oy = o / ow, ox = o - oy * ow;
      if constexpr (!kBilinear) {
        yp[o] = xp[(oy / f) * w + ox / f];
      } else {
        const Tap ty = bilinear_tap(oy, h, f), tx = bilinear_tap(ox, w, f);
        const T* r0 = xp + ty.i0 * w;
        const T* r1 = xp + ty.i1 * w;
        const float top = (1.f - tx.l1) * static_cast<float>(r0[tx.i0]) + tx.l1 * static_cast<float>(r0[tx.i1]);
        const float bot = (1.f - tx.l1) * static_cast<float>(r1[tx.i0]) + tx.l1 * static_cast<float>(r1[tx.i1]);
        yp[o] = static_cast<T>((1.f - ty.l1) * top + ty.l1 * bot);
      }
    }
  }
}

// One thread per input pixel, gathering the outputs that read it in
// increasing output order. Bilinear: output rows touching input row iy lie in
// [iy*f - f, iy*f + 2f) (their i0 is iy - 1 or iy, or clamped), columns likewise.
// Four blocks of 256 (at most 64 registers): without the minimum, ptxas
// (CUDA 13, sm_89) holds the bilinear any-factor case to 48 and spills 28-40 B.
template <int F, bool kBilinear, typename T>
__global__ void __launch_bounds__(kThreads, 4)
    upsample_bwd_kernel(int64_t planes, int h, int w, int f_rt, const T* __restrict__ dy, T* __restrict__ dx,
                        bool accumulate) {
  const int f = F > 0 ? F : f_rt;
  const int oh = h * f, ow = w * f, hw = h * w;
  const int start = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  const int step = static_cast<int>(gridDim.x * blockDim.x);
  for (int64_t p = blockIdx.y; p < planes; p += gridDim.y) {
    const T* gp = dy + p * oh * ow;
    T* dp = dx + p * hw;
    for (int i = start; i < hw; i += step) {
      const int iy = i / w, ix = i - iy * w;
      float v = accumulate ? static_cast<float>(dp[i]) : 0.f;
      if constexpr (!kBilinear) {
        for (int a = 0; a < f; ++a) {
          const T* row = gp + (iy * f + a) * ow + ix * f;
          for (int b = 0; b < f; ++b) v += static_cast<float>(row[b]);
        }
      } else {
        const int oy0 = max(iy * f - f, 0), oy1 = min(iy * f + 2 * f, oh);
        const int ox0 = max(ix * f - f, 0), ox1 = min(ix * f + 2 * f, ow);
        for (int oy = oy0; oy < oy1; ++oy) {
          float wy;
          if (!bilinear_weight(oy, iy, h, f, wy)) continue;
          const T* row = gp + oy * ow;
          for (int ox = ox0; ox < ox1; ++ox) {
            float wx;
            if (bilinear_weight(ox, ix, w, f, wx)) v += wy * wx * static_cast<float>(row[ox]);
          }
        }
      }
      dp[i] = static_cast<T>(v);
    }
  }
}

dim3 plane_grid(int64_t per_plane, int64_t planes) {
  const int64_t chunks = (per_plane + kThreads - 1) / kThreads;
  return dim3(static_cast<unsigned>(chunks < kMaxGridX ? chunks : kMaxGridX),
              static_cast<unsigned>(planes < kMaxGridY ? planes : kMaxGridY));
}

template <bool kBilinear, typename T>
cudaError_t fwd(int64_t planes, int h, int w, int f, const T* x, T* y, cudaStream_t stream) {
  const dim3 grid = plane_grid(int64_t(h) * w * f * f, planes);
  switch (f) {
    case 2: return LK_LAUNCH((upsample_fwd_kernel<2, kBilinear, T>), grid, kThreads, 0, stream)(planes, h, w, f, x, y);
    case 4: return LK_LAUNCH((upsample_fwd_kernel<4, kBilinear, T>), grid, kThreads, 0, stream)(planes, h, w, f, x, y);
    case 8: return LK_LAUNCH((upsample_fwd_kernel<8, kBilinear, T>), grid, kThreads, 0, stream)(planes, h, w, f, x, y);
    default: return LK_LAUNCH((upsample_fwd_kernel<0, kBilinear, T>), grid, kThreads, 0, stream)(planes, h, w, f, x, y);
  }
}

template <bool kBilinear, typename T>
cudaError_t bwd(int64_t planes, int h, int w, int f, const T* dy, T* dx, cudaStream_t stream, bool acc) {
  const dim3 grid = plane_grid(int64_t(h) * w, planes);
  switch (f) {
    case 2: return LK_LAUNCH((upsample_bwd_kernel<2, kBilinear, T>), grid, kThreads, 0, stream)(planes, h, w, f, dy, dx, acc);
    case 4: return LK_LAUNCH((upsample_bwd_kernel<4, kBilinear, T>), grid, kThreads, 0, stream)(planes, h, w, f, dy, dx, acc);
    case 8: return LK_LAUNCH((upsample_bwd_kernel<8, kBilinear, T>), grid, kThreads, 0, stream)(planes, h, w, f, dy, dx, acc);
    default: return LK_LAUNCH((upsample_bwd_kernel<0, kBilinear, T>), grid, kThreads, 0, stream)(planes, h, w, f, dy, dx, acc);
  }
}

// Sizes in range for the kernels' int arithmetic (the output plane, and
// 2 * output coordinate + 1 in the taps).
bool valid(int64_t planes, int64_t h, int64_t w, int64_t f) {
  if (planes < 0 || h < 0 || w < 0 || f < 1) return false;
  return h * w == 0 || (h * f <= INT_MAX / 2 && w * f <= INT_MAX / 2 && h * f <= INT_MAX / (w * f));
}

}  // namespace

template <typename T>
cudaError_t upsample_fwd(UpsampleMode mode, int64_t planes, int64_t h, int64_t w, int64_t f, const T* x, T* y,
                         cudaStream_t stream) {
  if (!valid(planes, h, w, f)) return cudaErrorInvalidValue;
  if (planes * h * w == 0) return cudaSuccess;
  const int hi = static_cast<int>(h), wi = static_cast<int>(w), fi = static_cast<int>(f);
  if (mode == UpsampleMode::Bilinear) return fwd<true>(planes, hi, wi, fi, x, y, stream);
  return fwd<false>(planes, hi, wi, fi, x, y, stream);
}

template <typename T>
cudaError_t upsample_bwd(UpsampleMode mode, int64_t planes, int64_t h, int64_t w, int64_t f, const T* dy, T* dx,
                         cudaStream_t stream, bool accumulate) {
  if (!valid(planes, h, w, f)) return cudaErrorInvalidValue;
  if (planes * h * w == 0) return cudaSuccess;
  const int hi = static_cast<int>(h), wi = static_cast<int>(w), fi = static_cast<int>(f);
  if (mode == UpsampleMode::Bilinear) return bwd<true>(planes, hi, wi, fi, dy, dx, stream, accumulate);
  return bwd<false>(planes, hi, wi, fi, dy, dx, stream, accumulate);
}

#define LK_INST(T)                                                                                     \
  template cudaError_t upsample_fwd<T>(UpsampleMode, int64_t, int64_t, int64_t, int64_t, const T*, T*, cudaStream_t); \
  template cudaError_t upsample_bwd<T>(UpsampleMode, int64_t, int64_t, int64_t, int64_t, const T*, T*, cudaStream_t, \
                                       bool);
LK_INSTANTIATE_STORAGE(LK_INST)
#undef LK_INST

LK_CUDA_NAMESPACE_END
