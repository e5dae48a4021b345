// Batch normalisation forward (training, evaluation) and backward, float.
// Per-channel blocks reduce deterministically: thread t owns the channel
// elements t, t + T, t + 2T, ... (T = blockDim.x), sums them in float in that
// order, and a fixed tree (warp shuffles, then one warp over the per-warp
// sums in shared memory) combines the threads.
#include <climits>
#include <cmath>

#include "kernels/cuda/batch_norm.h"
#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/warp_reduce.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kMaxWarps = kBatchNormMaxThreads / 32;
constexpr int64_t kMaxChannelBlocks = 65535;
constexpr int64_t kMaxChunks = 1024;  // evaluation: blocks per channel

// Calls f(offset) for the elements start, start + step, ... (< n*hw) of
// channel ch of an (n, c, hw) tensor, in that order, without a division per
// element: (image, position) advance by (step / hw, step % hw) with a carry.
template <typename F>
__device__ __forceinline__ void for_channel(int64_t n, int64_t c, int hw, int64_t ch, int start, int step, F&& f) {
  const int64_t m = n * hw, plane = c * hw;
  int k = start % hw;
  const int step_k = step % hw;
  const int64_t step_off = int64_t(step / hw) * plane + step_k;
  int64_t off = int64_t(start / hw) * plane + ch * hw + k;
  for (int64_t i = start; i < m; i += step) {
    f(off);
    off += step_off;
    k += step_k;
    if (k >= hw) {
      k -= hw;
      off += plane - hw;
    }
  }
}

// Sums v[0..N) over the block; every thread gets the totals. scratch holds
// N * (kMaxWarps + 1) values. Two barriers; safe to call again right away
// (the next call writes other slots before its first barrier).
template <typename T, int N>
__device__ __forceinline__ void block_sum(T (&v)[N], T* scratch) {
  const int tid = static_cast<int>(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int warps = static_cast<int>((blockDim.x + 31) / 32);
  LK_UNROLL
  for (int q = 0; q < N; ++q) {
    v[q] = warp_sum(v[q]);
    if (lane == 0) scratch[q * (kMaxWarps + 1) + warp] = v[q];
  }
  __syncthreads();
  if (warp == 0) {
    LK_UNROLL
    for (int q = 0; q < N; ++q) {
      T s = lane < warps ? scratch[q * (kMaxWarps + 1) + lane] : T(0);
      s = warp_sum(s);
      if (lane == 0) scratch[q * (kMaxWarps + 1) + kMaxWarps] = s;
    }
  }
  __syncthreads();
  LK_UNROLL
  for (int q = 0; q < N; ++q) v[q] = scratch[q * (kMaxWarps + 1) + kMaxWarps];
}

// Training forward: one block per channel (grid-stride over channels).
__global__ void __launch_bounds__(kBatchNormMaxThreads)
    batch_norm_fwd_train_kernel(int64_t n, int64_t c, int hw, const float* __restrict__ x,
                                const float* __restrict__ gamma, const float* __restrict__ beta,
                                float* __restrict__ running_mean, float* __restrict__ running_var, double momentum,
                                double eps, float* __restrict__ y, float* __restrict__ save_mean,
                                float* __restrict__ save_invstd) {
  LK_SHARED(float, scratch, [kMaxWarps + 1]);
  LK_SHARED(float, coef, [2]);
  const int tid = static_cast<int>(threadIdx.x), nt = static_cast<int>(blockDim.x);
  const int64_t m = n * hw;
  for (int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    float s[1] = {0.f};
    for_channel(n, c, hw, ch, tid, nt, [&](int64_t o) { s[0] += x[o]; });
    block_sum(s, scratch);
    const float mean = s[0] / static_cast<float>(m);
    float ss[1] = {0.f};
    for_channel(n, c, hw, ch, tid, nt, [&](int64_t o) {
      const float d = x[o] - mean;
      ss[0] += d * d;
    });
    block_sum(ss, scratch);
    if (tid == 0) {
      const double mean_d = mean, var = double(ss[0]) / static_cast<double>(m);
      const double invstd = 1.0 / sqrt(var + eps);
      running_mean[ch] = static_cast<float>((1 - momentum) * running_mean[ch] + momentum * mean_d);
      running_var[ch] = static_cast<float>((1 - momentum) * running_var[ch] +
                                           momentum * var * static_cast<double>(m) / static_cast<double>(m - 1));
      save_mean[ch] = mean;
      save_invstd[ch] = static_cast<float>(invstd);
      coef[0] = static_cast<float>(gamma[ch] * invstd);
      coef[1] = static_cast<float>(beta[ch] - mean_d * gamma[ch] * invstd);
    }
    __syncthreads();
    const float a = coef[0], b = coef[1];
    for_channel(n, c, hw, ch, tid, nt, [&](int64_t o) { y[o] = a * x[o] + b; });
    __syncthreads();  // coef is rewritten for the next channel
  }
}

// Evaluation forward: blockIdx.x picks the channel (grid-stride), blockIdx.y
// the chunk of its n*hw elements (grid-stride).
__global__ void __launch_bounds__(kBatchNormThreads)
    batch_norm_fwd_eval_kernel(int64_t n, int64_t c, int hw, const float* __restrict__ x,
                               const float* __restrict__ gamma, const float* __restrict__ beta,
                               const float* __restrict__ running_mean, const float* __restrict__ running_var,
                               double eps, float* __restrict__ y, float* __restrict__ save_mean,
                               float* __restrict__ save_invstd) {
  const int nt = static_cast<int>(blockDim.x);
  const int start = static_cast<int>(blockIdx.y) * nt + static_cast<int>(threadIdx.x);
  const int step = static_cast<int>(gridDim.y) * nt;
  for (int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    const double mean = running_mean[ch];
    const double invstd = 1.0 / sqrt(static_cast<double>(running_var[ch]) + eps);
    if (blockIdx.y == 0 && threadIdx.x == 0) {
      save_mean[ch] = running_mean[ch];
      save_invstd[ch] = static_cast<float>(invstd);
    }
    const float a = static_cast<float>(gamma[ch] * invstd);
    const float b = static_cast<float>(beta[ch] - mean * gamma[ch] * invstd);
    for_channel(n, c, hw, ch, start, step, [&](int64_t o) { y[o] = a * x[o] + b; });
  }
}

// Backward: one block per channel. sums: the two reductions are needed
// (training, or dgamma/dbeta requested).
__global__ void __launch_bounds__(kBatchNormMaxThreads)
    batch_norm_bwd_kernel(int64_t n, int64_t c, int hw, const float* __restrict__ dy, const float* __restrict__ x,
                          const float* __restrict__ gamma, const float* __restrict__ save_mean,
                          const float* __restrict__ save_invstd, bool training, bool sums, float* __restrict__ dx,
                          float* __restrict__ dgamma, float* __restrict__ dbeta, bool acc_dx, bool acc_dgamma,
                          bool acc_dbeta) {
  LK_SHARED(float, scratch, [2 * (kMaxWarps + 1)]);
  const int tid = static_cast<int>(threadIdx.x), nt = static_cast<int>(blockDim.x);
  const float m = static_cast<float>(n * hw);
  for (int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    const float mean = save_mean[ch], invstd = save_invstd[ch];
    float acc[2] = {0.f, 0.f};  // sum dy, sum dy * (x - mean)
    if (sums) {
      for_channel(n, c, hw, ch, tid, nt, [&](int64_t o) {
        const float g = dy[o];
        acc[0] += g;
        acc[1] += g * (x[o] - mean);
      });
      block_sum(acc, scratch);
    }
    const float sdy = acc[0], sdyx = acc[1] * invstd;  // sum dy * xhat
    if (tid == 0) {
      if (dgamma) lk_put_grad(dgamma[ch], sdyx, acc_dgamma);
      if (dbeta) lk_put_grad(dbeta[ch], sdy, acc_dbeta);
    }
    if (dx) {
      const float scale = gamma[ch] * invstd;
      if (training) {
        // dx = gamma*invstd * (dy - mean(dy) - xhat * mean(dy*xhat))
        const float a = sdy / m, b = sdyx / m * invstd;
        for_channel(n, c, hw, ch, tid, nt,
                    [&](int64_t o) { lk_put_grad(dx[o], scale * (dy[o] - a - (x[o] - mean) * b), acc_dx); });
      } else {
        for_channel(n, c, hw, ch, tid, nt, [&](int64_t o) { lk_put_grad(dx[o], scale * dy[o], acc_dx); });
      }
    }
  }
}

// Synchronised batch norm: per-channel sums in double (one block per
// channel): sum x (out[ch]), sum (x - mean)^2 (out[ch]; mean given), or sum dy
// and sum dy*xhat (out[ch], out[c + ch]; dy given).
__global__ void __launch_bounds__(kBatchNormMaxThreads)
    bn_sums_kernel(int64_t n, int64_t c, int hw, const float* __restrict__ x, const double* __restrict__ mean,
                   const float* __restrict__ dy, const float* __restrict__ save_mean,
                   const float* __restrict__ save_invstd, double* __restrict__ out) {
  LK_SHARED(double, scratch, [2 * (kMaxWarps + 1)]);
  const int tid = static_cast<int>(threadIdx.x), nt = static_cast<int>(blockDim.x);
  for (int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    double acc[2] = {0.0, 0.0};
    if (dy) {
      const double mu = save_mean[ch], is = save_invstd[ch];
      for_channel(n, c, hw, ch, tid, nt, [&](int64_t o) {
        const double g = dy[o];
        acc[0] += g;
        acc[1] += g * (x[o] - mu) * is;
      });
    } else if (mean) {
      const double mu = mean[ch];
      for_channel(n, c, hw, ch, tid, nt, [&](int64_t o) {
        const double d = x[o] - mu;
        acc[0] += d * d;
      });
    } else {
      for_channel(n, c, hw, ch, tid, nt, [&](int64_t o) { acc[0] += x[o]; });
    }
    block_sum(acc, scratch);
    if (tid == 0) {
      out[ch] = acc[0];
      if (dy) out[c + ch] = acc[1];
    }
  }
}

// dx += gamma*invstd*(dy - a - xhat*b) with the whole batch's a = means[ch],
// b = means[c + ch]; a (channels x chunks) grid as the evaluation forward.
__global__ void __launch_bounds__(kBatchNormThreads)
    bn_bwd_dx_kernel(int64_t n, int64_t c, int hw, const float* __restrict__ dy, const float* __restrict__ x,
                     const float* __restrict__ gamma, const float* __restrict__ mean,
                     const float* __restrict__ invstd, const float* __restrict__ means, float* __restrict__ dx) {
  const int nt = static_cast<int>(blockDim.x);
  const int start = static_cast<int>(blockIdx.y) * nt + static_cast<int>(threadIdx.x);
  const int step = static_cast<int>(gridDim.y) * nt;
  for (int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    const float mu = mean[ch], is = invstd[ch], scale = gamma[ch] * is, a = means[ch], b = means[c + ch] * is;
    for_channel(n, c, hw, ch, start, step, [&](int64_t o) { dx[o] += scale * (dy[o] - a - (x[o] - mu) * b); });
  }
}

int channel_threads(int64_t m) { return m >= 8192 ? 512 : m >= 2048 ? 256 : 128; }
int channel_grid(int64_t c) { return static_cast<int>(c < kMaxChannelBlocks ? c : kMaxChannelBlocks); }

bool valid_sizes(int64_t n, int64_t c, int64_t hw) { return n >= 0 && c >= 0 && hw >= 0 && hw <= INT_MAX; }

}  // namespace

cudaError_t batch_norm_fwd(int64_t n, int64_t c, int64_t hw, const float* x, const float* gamma, const float* beta,
                           float* running_mean, float* running_var, bool training, double momentum, double eps,
                           float* y, float* save_mean, float* save_invstd, cudaStream_t stream) {
  if (!valid_sizes(n, c, hw)) return cudaErrorInvalidValue;
  if (n * c * hw == 0) return cudaSuccess;
  const int64_t m = n * hw;
  const int h = static_cast<int>(hw);
  if (training) {
    if (m < 2) return cudaErrorInvalidValue;
    return LK_LAUNCH(batch_norm_fwd_train_kernel, channel_grid(c), channel_threads(m), 0, stream)(
        n, c, h, x, gamma, beta, running_mean, running_var, momentum, eps, y, save_mean, save_invstd);
  }
  const int64_t chunks = (m + kBatchNormThreads - 1) / kBatchNormThreads;
  const dim3 grid(static_cast<unsigned>(channel_grid(c)),
                  static_cast<unsigned>(chunks < kMaxChunks ? chunks : kMaxChunks));
  return LK_LAUNCH(batch_norm_fwd_eval_kernel, grid, kBatchNormThreads, 0, stream)(
      n, c, h, x, gamma, beta, running_mean, running_var, eps, y, save_mean, save_invstd);
}

cudaError_t batch_norm_bwd(int64_t n, int64_t c, int64_t hw, const float* dy, const float* x, const float* gamma,
                           const float* save_mean, const float* save_invstd, bool training, float* dx, float* dgamma,
                           float* dbeta, cudaStream_t stream, bool acc_dx, bool acc_dgamma, bool acc_dbeta) {
  if (!valid_sizes(n, c, hw)) return cudaErrorInvalidValue;
  if (n * c * hw == 0 || (!dx && !dgamma && !dbeta)) return cudaSuccess;
  const int64_t m = n * hw;
  const bool sums = (training && dx) || dgamma || dbeta;
  return LK_LAUNCH(batch_norm_bwd_kernel, channel_grid(c), channel_threads(m), 0, stream)(
      n, c, static_cast<int>(hw), dy, x, gamma, save_mean, save_invstd, training, sums, dx, dgamma, dbeta, acc_dx,
      acc_dgamma, acc_dbeta);
}

cudaError_t batch_norm_sums(int64_t n, int64_t c, int64_t hw, const float* x, const double* mean, const float* dy,
                            const float* save_mean, const float* save_invstd, double* out, cudaStream_t stream) {
  if (!valid_sizes(n, c, hw)) return cudaErrorInvalidValue;
  if (c == 0) return cudaSuccess;
  if (n * hw == 0) return cudaMemsetAsync(out, 0, static_cast<size_t>((dy ? 2 : 1) * c) * sizeof(double), stream);
  return LK_LAUNCH(bn_sums_kernel, channel_grid(c), channel_threads(n * hw), 0, stream)(
      n, c, static_cast<int>(hw), x, mean, dy, save_mean, save_invstd, out);
}

cudaError_t batch_norm_bwd_dx(int64_t n, int64_t c, int64_t hw, const float* dy, const float* x, const float* gamma,
                              const float* mean, const float* invstd, const float* means, float* dx,
                              cudaStream_t stream) {
  if (!valid_sizes(n, c, hw)) return cudaErrorInvalidValue;
  if (n * c * hw == 0) return cudaSuccess;
  const int64_t m = n * hw, chunks = (m + kBatchNormThreads - 1) / kBatchNormThreads;
  const dim3 grid(static_cast<unsigned>(channel_grid(c)),
                  static_cast<unsigned>(chunks < kMaxChunks ? chunks : kMaxChunks));
  return LK_LAUNCH(bn_bwd_dx_kernel, grid, kBatchNormThreads, 0, stream)(n, c, static_cast<int>(hw), dy, x, gamma,
                                                                         mean, invstd, means, dx);
}

LK_CUDA_NAMESPACE_END
