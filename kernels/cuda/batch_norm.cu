// Batch normalisation forward and backward on the planes x chunks grid
// (plane_chunks.cuh). Training forward: a statistics pass (per block: the
// sums of d = x - x[0, c, 0] and d^2, single pass, the shift keeping the
// variance free of cancellation), then an apply pass whose blocks each add
// their channel's partials (fixed order) and normalise. Backward: a
// reduction pass (sum dy, sum dy * (x - mean)) and an apply pass that
// finalises the sums the same way and writes dx.
#include <climits>
#include <cmath>

#include "kernels/cuda/batch_norm.h"
#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/plane_chunks.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

using namespace plane_chunks;

template <typename T>
__global__ void __launch_bounds__(kMaxThreads)
    bn_stats_kernel(int n, int c, int64_t hw, int64_t len, const T* __restrict__ x, double* __restrict__ part) {
  const Block b = block_of(c, hw, len);
  const float shift = static_cast<float>(x[int64_t(b.ch) * hw]);
  const T* p = x + b.off;
  float s1 = 0.f, s2 = 0.f;
  for (int64_t i = b.start + threadIdx.x; i < b.end; i += blockDim.x) {
    const float d = static_cast<float>(p[i]) - shift;
    s1 += d;
    s2 += d * d;
  }
  block_sum2_store(s1, s2, partial_of(part, b, n));
}

// Warp 0 finalises the channel's statistics (training: from the partials;
// evaluation: the running statistics) into coef = (scale, shift); the
// channel's writer block updates the running statistics and saves mean and
// invstd. Then every thread normalises its elements.
template <typename T>
__global__ void __launch_bounds__(kMaxThreads)
    bn_fwd_apply_kernel(int n, int c, int64_t hw, int64_t len, int chunks, const T* __restrict__ x,
                        const float* __restrict__ gamma, const float* __restrict__ beta,
                        float* __restrict__ running_mean, float* __restrict__ running_var, bool training,
                        double momentum, double eps, T* __restrict__ y, float* __restrict__ save_mean,
                        float* __restrict__ save_invstd, const double* __restrict__ part) {
  LK_SHARED(float, coef, [2]);
  const Block b = block_of(c, hw, len);
  if (threadIdx.x < 32)
    bn_channel_fwd(b, n, hw, chunks, static_cast<float>(x[int64_t(b.ch) * hw]), part, gamma, beta, running_mean,
                   running_var, training, momentum, eps, save_mean, save_invstd, coef);
  __syncthreads();
  const float scale = coef[0], shift = coef[1];
  const T* p = x + b.off;
  T* q = y + b.off;
  for (int64_t i = b.start + threadIdx.x; i < b.end; i += blockDim.x)
    q[i] = static_cast<T>(scale * static_cast<float>(p[i]) + shift);
}

// Per block: sum dy and sum dy * (x - mean).
template <typename T>
__global__ void __launch_bounds__(kMaxThreads)
    bn_bwd_reduce_kernel(int n, int c, int64_t hw, int64_t len, const T* __restrict__ dy, const T* __restrict__ x,
                         const float* __restrict__ save_mean, double* __restrict__ part) {
  const Block b = block_of(c, hw, len);
  const float mean = save_mean[b.ch];
  const T *g = dy + b.off, *p = x + b.off;
  float s1 = 0.f, s2 = 0.f;
  for (int64_t i = b.start + threadIdx.x; i < b.end; i += blockDim.x) {
    const float d = static_cast<float>(g[i]);
    s1 += d;
    s2 += d * (static_cast<float>(p[i]) - mean);
  }
  block_sum2_store(s1, s2, partial_of(part, b, n));
}

// Warp 0 finalises the channel's sums (when `sums`): the writer block adds
// (or writes) dgamma and dbeta; coef = (mean(dy), mean(dy * xhat) * invstd) in training,
// zero in evaluation. Then dx (+)= gamma*invstd * (dy - coef0 - (x - mean) * coef1).
template <typename T>
__global__ void __launch_bounds__(kMaxThreads)
    bn_bwd_apply_kernel(int n, int c, int64_t hw, int64_t len, int chunks, const T* __restrict__ dy,
                        const T* __restrict__ x, const float* __restrict__ gamma, const float* __restrict__ save_mean,
                        const float* __restrict__ save_invstd, bool training, bool sums, T* __restrict__ dx,
                        float* __restrict__ dgamma, float* __restrict__ dbeta, const double* __restrict__ part,
                        bool acc_dx, bool acc_dgamma, bool acc_dbeta) {
  LK_SHARED(float, coef, [2]);
  const Block b = block_of(c, hw, len);
  const float mean = save_mean[b.ch], invstd = save_invstd[b.ch];
  if (threadIdx.x < 32)
    bn_channel_bwd(b, n, hw, chunks, sums, training, invstd, part, dgamma, dbeta, acc_dgamma, acc_dbeta, coef);
  __syncthreads();
  if (!dx) return;  // dgamma/dbeta only (no barrier follows)
  const float scale = gamma[b.ch] * invstd, a = coef[0], k = coef[1];
  const T *g = dy + b.off, *p = x + b.off;
  T* q = dx + b.off;
  for (int64_t i = b.start + threadIdx.x; i < b.end; i += blockDim.x) {
    const float v = scale * (static_cast<float>(g[i]) - a - (static_cast<float>(p[i]) - mean) * k);
    q[i] = static_cast<T>(acc_dx ? static_cast<float>(q[i]) + v : v);
  }
}

bool valid_sizes(int64_t n, int64_t c, int64_t hw) {
  return n >= 0 && c >= 0 && hw >= 0 && hw <= INT_MAX && n * c <= INT_MAX && n * kMaxChunks <= INT_MAX;
}

bool workspace_ok(const void* ws, size_t bytes, int64_t n, int64_t c, int64_t hw) {
  return ws && bytes >= partial_bytes(n, c, hw) && reinterpret_cast<uintptr_t>(ws) % alignof(double) == 0;
}

dim3 grid_of(int64_t n, int64_t c, const Shape& s) {
  return dim3(static_cast<unsigned>(n * c), static_cast<unsigned>(s.chunks));
}

}  // namespace

size_t batch_norm_workspace_bytes(int64_t n, int64_t c, int64_t hw) {
  return valid_sizes(n, c, hw) ? partial_bytes(n, c, hw) : 0;
}

cudaError_t batch_norm_fwd(int64_t n, int64_t c, int64_t hw, const float* x, const float* gamma, const float* beta,
                           float* running_mean, float* running_var, bool training, double momentum, double eps,
                           float* y, float* save_mean, float* save_invstd, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream) {
  if (!valid_sizes(n, c, hw)) return cudaErrorInvalidValue;
  if (n * c * hw == 0) return cudaSuccess;
  if (training && n * hw < 2) return cudaErrorInvalidValue;
  if (training && !workspace_ok(workspace, workspace_bytes, n, c, hw)) return cudaErrorInvalidValue;
  const Shape s = shape_for(hw);
  const dim3 grid = grid_of(n, c, s);
  const int ni = static_cast<int>(n), ci = static_cast<int>(c);
  auto* part = static_cast<double*>(workspace);
  if (training) {
    const cudaError_t e = LK_LAUNCH(bn_stats_kernel<float>, grid, s.threads, 0, stream)(ni, ci, hw, s.len, x, part);
    if (e != cudaSuccess) return e;
  }
  return LK_LAUNCH(bn_fwd_apply_kernel<float>, grid, s.threads, 0, stream)(
      ni, ci, hw, s.len, s.chunks, x, gamma, beta, running_mean, running_var, training, momentum, eps, y, save_mean,
      save_invstd, part);
}

cudaError_t batch_norm_bwd(int64_t n, int64_t c, int64_t hw, const float* dy, const float* x, const float* gamma,
                           const float* save_mean, const float* save_invstd, bool training, float* dx, float* dgamma,
                           float* dbeta, void* workspace, size_t workspace_bytes, cudaStream_t stream, bool acc_dx,
                           bool acc_dgamma, bool acc_dbeta) {
  if (!valid_sizes(n, c, hw)) return cudaErrorInvalidValue;
  if (n * c * hw == 0 || (!dx && !dgamma && !dbeta)) return cudaSuccess;
  const bool sums = (training && dx) || dgamma || dbeta;
  if (sums && !workspace_ok(workspace, workspace_bytes, n, c, hw)) return cudaErrorInvalidValue;
  const Shape s = shape_for(hw);
  const int ni = static_cast<int>(n), ci = static_cast<int>(c);
  auto* part = static_cast<double*>(workspace);
  if (sums) {
    const cudaError_t e = LK_LAUNCH(bn_bwd_reduce_kernel<float>, grid_of(n, c, s), s.threads, 0, stream)(
        ni, ci, hw, s.len, dy, x, save_mean, part);
    if (e != cudaSuccess) return e;
  }
  // Without dx only the writer blocks (image 0, chunk 0 of each channel) have work.
  const dim3 grid = dx ? grid_of(n, c, s) : dim3(static_cast<unsigned>(c), 1u);
  return LK_LAUNCH(bn_bwd_apply_kernel<float>, grid, s.threads, 0, stream)(
      ni, ci, hw, s.len, s.chunks, dy, x, gamma, save_mean, save_invstd, training, sums, dx, dgamma, dbeta, part, acc_dx,
      acc_dgamma, acc_dbeta);
}

LK_CUDA_NAMESPACE_END
