// Synchronised batch norm's device pieces (kernels/cuda/batch_norm.h:
// batch_norm_sums, batch_norm_bwd_dx), float. Per-channel blocks reduce
// deterministically in double: thread t owns the channel elements t, t + T,
// t + 2T, ... (T = blockDim.x) in that order, and a fixed tree (warp
// shuffles, then one warp over the per-warp sums in shared memory) combines
// the threads.
#include <climits>
#include <cmath>

#include "kernels/cuda/batch_norm.h"
#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/warp_reduce.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kSyncMaxThreads = 512;  // per-channel blocks: 128, 256 or 512 threads by channel length
constexpr int kSyncThreads = 256;     // the dx pass
constexpr int kMaxWarps = kSyncMaxThreads / 32;
constexpr int64_t kMaxChannelBlocks = 65535;
constexpr int64_t kMaxChunks = 1024;  // the dx pass: blocks per channel

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


// Synchronised batch norm: per-channel sums in double (one block per
// channel): sum x (out[ch]), sum (x - mean)^2 (out[ch]; mean given), or sum dy
// and sum dy*xhat (out[ch], out[c + ch]; dy given).
__global__ void __launch_bounds__(kSyncMaxThreads)
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
__global__ void __launch_bounds__(kSyncThreads)
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
  const int64_t m = n * hw, chunks = (m + kSyncThreads - 1) / kSyncThreads;
  const dim3 grid(static_cast<unsigned>(channel_grid(c)),
                  static_cast<unsigned>(chunks < kMaxChunks ? chunks : kMaxChunks));
  return LK_LAUNCH(bn_bwd_dx_kernel, grid, kSyncThreads, 0, stream)(n, c, static_cast<int>(hw), dy, x, gamma,
                                                                         mean, invstd, means, dx);
}

LK_CUDA_NAMESPACE_END
