// CE + adaptive Tversky of one output in one pixel pass, and the weighted
// sum of the terms (loss_terms.h), float.
#include <climits>
#include <cstdint>

#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/loss_reduce.cuh"
#include "kernels/cuda/loss_terms.h"

LK_CUDA_NAMESPACE_BEGIN
namespace {

using loss_detail::CrossEntropyPartial;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kFinalThreads = 256;
constexpr int64_t kMaxBlocksX = 1024;
constexpr int64_t kMaxGridY = 65535;

dim3 pixel_grid(int64_t n, int64_t hw) {
  const int64_t gx = (hw + kThreads - 1) / kThreads;
  return dim3(static_cast<unsigned>(gx < kMaxBlocksX ? gx : kMaxBlocksX),
              static_cast<unsigned>(n < kMaxGridY ? n : kMaxGridY));
}

// Workspace: [CE partials][per class (TP part, sum p, count) x partials, double][3C double]
struct Layout {
  size_t ce, cls_part, cls, total;
  int count;
};
Layout layout(int64_t n, int64_t c, int64_t hw) {
  Layout l{};
  const dim3 g = pixel_grid(n, hw);
  l.count = n > 0 && hw > 0 ? static_cast<int>(g.x * g.y) : 0;
  l.ce = 0;
  l.cls_part = l.ce + static_cast<size_t>(l.count) * sizeof(CrossEntropyPartial);
  l.cls = l.cls_part + static_cast<size_t>(l.count) * static_cast<size_t>(c) * 3 * sizeof(double);
  l.total = l.cls + static_cast<size_t>(c) * 3 * sizeof(double);
  return l;
}

template <int C>
__device__ __forceinline__ void ce_tversky_count(int64_t n, int64_t hw, const float* __restrict__ logits,
                                                 const int32_t* __restrict__ target, const float* __restrict__ weight,
                                                 CrossEntropyPartial* __restrict__ ce_part,
                                                 double* __restrict__ cls_part, int count) {
  LK_SHARED(double, s_cls, [kWarps][3 * C]);
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  double num = 0.0, den = 0.0;
  int64_t bad = INT64_MAX;
  float a[C], s[C];
  int y[C];
  LK_UNROLL
  for (int k = 0; k < C; ++k) a[k] = 0.f, s[k] = 0.f, y[k] = 0;
  for (int64_t img = blockIdx.y; img < n; img += gridDim.y)
    for (int64_t p = int64_t(blockIdx.x) * kThreads + threadIdx.x; p < hw; p += stride) {
      const float* z = logits + img * C * hw + p;
      float mx, sum;
      loss_detail::pixel_max_sum(z, hw, C, mx, sum);
      const float inv = 1.f / sum;
      const int t = __ldg(target + img * hw + p);
      LK_UNROLL
      for (int k = 0; k < C; ++k) {
        const float pk = expf(z[k * hw] - mx) * inv;
        s[k] += pk;
        if (t == k) a[k] += pk, ++y[k];
      }
      loss_detail::ce_pixel(z, hw, C, t, mx, sum, weight, img * hw + p, num, den, bad);
    }
  const int j = static_cast<int>(blockIdx.y * gridDim.x + blockIdx.x);
  const CrossEntropyPartial r = loss_detail::ce_block_reduce(num, den, bad);
  if (threadIdx.x == 0) ce_part[j] = r;
  // Per class: warp sums (double), then thread v adds value v of the warps in order.
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  LK_UNROLL
  for (int k = 0; k < C; ++k) {
    const double wa = warp_sum(static_cast<double>(a[k])), ws = warp_sum(static_cast<double>(s[k]));
    const int wy = warp_sum(y[k]);
    if (lane == 0) s_cls[warp][3 * k] = wa, s_cls[warp][3 * k + 1] = ws, s_cls[warp][3 * k + 2] = wy;
  }
  __syncthreads();
  const int v = static_cast<int>(threadIdx.x);
  if (v < 3 * C) {
    double t = 0.0;
    for (int w = 0; w < kWarps; ++w) t += s_cls[w][v];
    cls_part[(int64_t(v / 3) * count + j) * 3 + v % 3] = t;
  }
}

// The kernels around ce_tversky_count. Without a minimum block count, CUDA 13's
// ptxas holds C = 4-5 to 40-48 registers and spills 8-16 bytes; four blocks of
// 256 (at most 64 registers) keep C <= 6 in registers, C = 7-8 need two
// (docs/ptxas.md).
template <int C>
__global__ void __launch_bounds__(kThreads, 4)
    ce_tversky_count_kernel(int64_t n, int64_t hw, const float* __restrict__ logits, const int32_t* __restrict__ target,
                            const float* __restrict__ weight, CrossEntropyPartial* __restrict__ ce_part,
                            double* __restrict__ cls_part, int count) {
  ce_tversky_count<C>(n, hw, logits, target, weight, ce_part, cls_part, count);
}
template <int C>
__global__ void __launch_bounds__(kThreads, 2)
    ce_tversky_count_wide_kernel(int64_t n, int64_t hw, const float* __restrict__ logits,
                                 const int32_t* __restrict__ target, const float* __restrict__ weight,
                                 CrossEntropyPartial* __restrict__ ce_part, double* __restrict__ cls_part, int count) {
  ce_tversky_count<C>(n, hw, logits, target, weight, ce_part, cls_part, count);
}

// One block: the CE and the Tversky final passes, then loss = CE + Tversky.
__global__ void __launch_bounds__(kFinalThreads)
    ce_tversky_final_kernel(double alpha_min, double alpha_max, double eps, int c, int count,
                            const CrossEntropyPartial* __restrict__ ce_part, const double* __restrict__ cls_part,
                            double* __restrict__ cls, const int32_t* __restrict__ target, float* __restrict__ loss,
                            float* __restrict__ stats, LabelError* __restrict__ error) {
  float* tail = stats + 4 * c;  // wsum, CE, Tversky
  loss_detail::ce_final(ce_part, count, target, &tail[1], &tail[0], error);
  __syncthreads();
  loss_detail::tversky_final<kFinalThreads>(alpha_min, alpha_max, eps, c, count, cls_part, nullptr, cls, target,
                                            &tail[2], stats, nullptr);
  __syncthreads();
  if (threadIdx.x == 0) loss[0] = tail[1] + tail[2];  // NaN with a bad label (the CE's)
}

template <int C>
__global__ void __launch_bounds__(kThreads)
    ce_tversky_bwd_kernel(double alpha_min, double alpha_max, double eps, bool detach_alpha, int64_t n, int64_t hw,
                          const float* __restrict__ dloss, const float* __restrict__ logits,
                          const int32_t* __restrict__ target, const float* __restrict__ weight,
                          const float* __restrict__ stats, float* __restrict__ dlogits, bool accumulate) {
  LK_SHARED(float, s_g, [2 * C]);  // per class: g_y, g_n
  const int tid = static_cast<int>(threadIdx.x);
  if (tid < C)
    loss_detail::tversky_class_grad(stats[tid], stats[C + tid], stats[2 * C + tid], stats[3 * C + tid], dloss[0], C,
                                    alpha_min, alpha_max, eps, detach_alpha, s_g[2 * tid], s_g[2 * tid + 1]);
  __syncthreads();
  const float scale = __ldg(dloss) / __ldg(stats + 4 * C);  // dloss / wsum
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  for (int64_t img = blockIdx.y; img < n; img += gridDim.y)
    for (int64_t p = int64_t(blockIdx.x) * kThreads + threadIdx.x; p < hw; p += stride) {
      const int64_t base = img * C * hw + p;
      const int t = __ldg(target + img * hw + p);
      if (t < 0 || t >= C) {  // contributes nothing
        if (!accumulate) {
          LK_UNROLL
          for (int k = 0; k < C; ++k) dlogits[base + k * hw] = 0.f;
        }
        continue;
      }
      const float* z = logits + base;
      float mx, sum;
      loss_detail::pixel_max_sum(z, hw, C, mx, sum);
      const float inv = 1.f / sum;
      float pk[C], gk[C];
      float dot = 0.f;
      LK_UNROLL
      for (int k = 0; k < C; ++k) {
        pk[k] = expf(z[k * hw] - mx) * inv;
        gk[k] = s_g[2 * k + (k == t ? 0 : 1)];
        dot += gk[k] * pk[k];
      }
      const float g = scale * (weight ? __ldg(weight + t) : 1.f);
      LK_UNROLL
      for (int k = 0; k < C; ++k) {
        const float ce = g * (pk[k] - (k == t ? 1.f : 0.f)), tv = pk[k] * (gk[k] - dot);
        lk_put_grad(dlogits[base + k * hw], ce + tv, accumulate);
      }
    }
}

template <int C>
cudaError_t fwd_c(const TverskyParams& tp, int64_t n, int64_t hw, const float* logits, const int32_t* target,
                  const float* weight, float* loss, float* stats, LabelError* error, char* ws, const Layout& l,
                  cudaStream_t stream) {
  auto* ce_part = reinterpret_cast<CrossEntropyPartial*>(ws + l.ce);
  auto* cls_part = reinterpret_cast<double*>(ws + l.cls_part);
  auto* cls = reinterpret_cast<double*>(ws + l.cls);
  if (l.count > 0) {
    const dim3 grid = pixel_grid(n, hw);
    cudaError_t e;
    if constexpr (C <= 6)
      e = LK_LAUNCH(ce_tversky_count_kernel<C>, grid, kThreads, 0, stream)(n, hw, logits, target, weight, ce_part,
                                                                           cls_part, l.count);
    else
      e = LK_LAUNCH(ce_tversky_count_wide_kernel<C>, grid, kThreads, 0, stream)(n, hw, logits, target, weight,
                                                                                ce_part, cls_part, l.count);
    if (e != cudaSuccess) return e;
  }
  return LK_LAUNCH(ce_tversky_final_kernel, 1, kFinalThreads, 0, stream)(
      tp.alpha_min, tp.alpha_max, tp.eps, C, l.count, ce_part, cls_part, cls, target, loss, stats, error);
}

template <int C>
cudaError_t bwd_c(const TverskyParams& tp, int64_t n, int64_t hw, const float* dloss, const float* logits,
                  const int32_t* target, const float* weight, const float* stats, float* dlogits, cudaStream_t stream,
                  bool accumulate) {
  return LK_LAUNCH(ce_tversky_bwd_kernel<C>, pixel_grid(n, hw), kThreads, 0, stream)(
      tp.alpha_min, tp.alpha_max, tp.eps, tp.detach_alpha, n, hw, dloss, logits, target, weight, stats, dlogits,
      accumulate);
}

bool bad_sizes(int64_t n, int64_t c, int64_t hw) {
  return n < 0 || hw < 0 || c < 1 || c > kCeTverskyMaxClasses || n * hw > (int64_t(1) << 40);
}

// The inputs of weighted_sum, by value (a kernel argument).
struct Terms {
  const float* x[kWeightedSumMax];
  float* dx[kWeightedSumMax];
  double w[kWeightedSumMax];
  bool acc[kWeightedSumMax];
  int k;
};

__global__ void __launch_bounds__(kThreads)
    weighted_sum_fwd_kernel(Terms t, int64_t n, float* __restrict__ y, bool accumulate) {
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  for (int64_t e = int64_t(blockIdx.x) * kThreads + threadIdx.x; e < n; e += stride) {
    double s = 0.0;
    for (int i = 0; i < t.k; ++i) s += t.w[i] * static_cast<double>(t.x[i][e]);
    lk_put_grad(y[e], static_cast<float>(s), accumulate);
  }
}

__global__ void __launch_bounds__(kThreads) weighted_sum_bwd_kernel(Terms t, int64_t n, const float* __restrict__ dy) {
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  for (int64_t e = int64_t(blockIdx.x) * kThreads + threadIdx.x; e < n; e += stride) {
    const double g = static_cast<double>(dy[e]);
    for (int i = 0; i < t.k; ++i)
      if (t.dx[i]) lk_put_grad(t.dx[i][e], static_cast<float>(t.w[i] * g), t.acc[i]);
  }
}

unsigned grid_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < kMaxBlocksX ? b : kMaxBlocksX);
}

}  // namespace

size_t ce_tversky_workspace_bytes(int64_t n, int64_t c, int64_t hw) { return layout(n, c, hw).total; }

cudaError_t ce_tversky_fwd(const TverskyParams& tp, int64_t n, int64_t c, int64_t hw, const float* logits,
                           const int32_t* target, const float* weight, float* loss, float* stats, LabelError* error,
                           void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (bad_sizes(n, c, hw) || !loss || !stats || !workspace) return cudaErrorInvalidValue;
  const Layout l = layout(n, c, hw);
  if (workspace_bytes < l.total || reinterpret_cast<uintptr_t>(workspace) % 8 != 0) return cudaErrorInvalidValue;
  char* ws = static_cast<char*>(workspace);
  switch (c) {
#define LK_CASE(C) \
  case C: return fwd_c<C>(tp, n, hw, logits, target, weight, loss, stats, error, ws, l, stream);
    LK_CASE(1) LK_CASE(2) LK_CASE(3) LK_CASE(4) LK_CASE(5) LK_CASE(6) LK_CASE(7) LK_CASE(8)
#undef LK_CASE
  }
  return cudaErrorInvalidValue;
}

cudaError_t ce_tversky_bwd(const TverskyParams& tp, int64_t n, int64_t c, int64_t hw, const float* dloss,
                           const float* logits, const int32_t* target, const float* weight, const float* stats,
                           float* dlogits, cudaStream_t stream, bool accumulate) {
  if (bad_sizes(n, c, hw) || !dloss || !stats) return cudaErrorInvalidValue;
  if (n == 0 || hw == 0) return cudaSuccess;
  switch (c) {
#define LK_CASE(C) \
  case C: return bwd_c<C>(tp, n, hw, dloss, logits, target, weight, stats, dlogits, stream, accumulate);
    LK_CASE(1) LK_CASE(2) LK_CASE(3) LK_CASE(4) LK_CASE(5) LK_CASE(6) LK_CASE(7) LK_CASE(8)
#undef LK_CASE
  }
  return cudaErrorInvalidValue;
}

cudaError_t weighted_sum_fwd(int k, const float* const* xs, const double* w, int64_t n, float* y, cudaStream_t stream,
                             bool accumulate) {
  if (k < 1 || k > kWeightedSumMax || n < 0 || !xs || !w || !y) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  Terms t{};
  t.k = k;
  for (int i = 0; i < k; ++i) t.x[i] = xs[i], t.w[i] = w[i];
  return LK_LAUNCH(weighted_sum_fwd_kernel, grid_for(n), kThreads, 0, stream)(t, n, y, accumulate);
}

cudaError_t weighted_sum_bwd(int k, const float* dy, const double* w, int64_t n, float* const* dxs,
                             const bool* accumulate, cudaStream_t stream) {
  if (k < 1 || k > kWeightedSumMax || n < 0 || !dy || !w || !dxs || !accumulate) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  Terms t{};
  t.k = k;
  for (int i = 0; i < k; ++i) t.dx[i] = dxs[i], t.w[i] = w[i], t.acc[i] = accumulate[i];
  return LK_LAUNCH(weighted_sum_bwd_kernel, grid_for(n), kThreads, 0, stream)(t, n, dy);
}

LK_CUDA_NAMESPACE_END
