// The launch shape of the per-channel kernels over (N, C, HW) tensors (batch
// norm, the LKA gate): a grid of N*C planes x chunks, each block one chunk
// of one (image, channel) plane, so even 32 channels at batch 8 fill a GPU.
// Per-channel reductions go per block into a workspace of partials (double,
// two values per block, in (channel, image, chunk) order); every block that
// needs a channel's totals adds that channel's partials itself, one warp in a
// fixed order, so all blocks get the same bits and results are deterministic
// (no float atomics, no finalising launch). Also the per-channel steps that
// batch norm and the kernels fusing it share (affine_of, bn_channel_fwd,
// bn_channel_bwd).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/warp_reduce.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace plane_chunks {

inline constexpr int kMaxThreads = 256;  // per block
inline constexpr int kMaxWarps = kMaxThreads / 32;
inline constexpr int kItems = 8;        // elements per thread and chunk, about
inline constexpr int kMaxChunks = 256;  // per plane

// Threads per block for planes of hw elements: 64..256, a multiple of 32
// (64 at least, so small planes still give full occupancy per SM).
inline int threads_for(int64_t hw) {
  const int64_t want = (hw + kItems - 1) / kItems;
  const int64_t t = (want + 31) / 32 * 32;
  return static_cast<int>(t < 64 ? 64 : (t > kMaxThreads ? kMaxThreads : t));
}
inline int chunk_count(int64_t hw, int threads) {
  const int64_t per = int64_t(threads) * kItems;
  const int64_t ch = (hw + per - 1) / per;
  return static_cast<int>(ch < 1 ? 1 : (ch > kMaxChunks ? kMaxChunks : ch));
}
inline int64_t chunk_len(int64_t hw, int chunks) { return (hw + chunks - 1) / chunks; }

// The launch of one pass: grid (n*c, chunks), block `threads`.
struct Shape {
  int threads = 0, chunks = 0;
  int64_t len = 0;  // elements per chunk (the last may be shorter)
};
inline Shape shape_for(int64_t hw) {
  Shape s;
  s.threads = threads_for(hw);
  s.chunks = chunk_count(hw, s.threads);
  s.len = chunk_len(hw, s.chunks);
  return s;
}
// Bytes of partials (two doubles per block) for n*c planes.
inline size_t partial_bytes(int64_t n, int64_t c, int64_t hw) {
  return static_cast<size_t>(n * c) * static_cast<size_t>(shape_for(hw).chunks) * 2 * sizeof(double);
}

// The block's plane and chunk.
struct Block {
  int plane, img, ch;
  int64_t start, end;  // element range of the chunk in the plane
  int64_t off;         // plane * hw
};
__device__ __forceinline__ Block block_of(int c, int64_t hw, int64_t len) {
  Block b;
  b.plane = static_cast<int>(blockIdx.x);
  b.img = b.plane / c;
  b.ch = b.plane - b.img * c;
  b.start = int64_t(blockIdx.y) * len;
  b.end = b.start + len < hw ? b.start + len : hw;
  b.off = int64_t(b.plane) * hw;
  return b;
}
// The block that writes a channel's results (running statistics, saved
// statistics, parameter gradients): image 0, chunk 0.
__device__ __forceinline__ bool writes_channel(const Block& b) { return b.img == 0 && blockIdx.y == 0; }

__device__ __forceinline__ double* partial_of(double* part, const Block& b, int n) {
  return part + ((int64_t(b.ch) * n + b.img) * gridDim.y + blockIdx.y) * 2;
}

// Block-wide sums of (a, b), in a fixed order (per warp, then the warps in
// order, in double), stored by thread 0 at q[0..1]. Every thread calls it;
// one barrier, and nothing may reuse its shared memory after it.
__device__ __forceinline__ void block_sum2_store(float a, float b, double* q) {
  LK_SHARED(double, s_a, [kMaxWarps]);
  LK_SHARED(double, s_b, [kMaxWarps]);
  const double wa = warp_sum(static_cast<double>(a)), wb = warp_sum(static_cast<double>(b));
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  if (lane == 0) s_a[warp] = wa, s_b[warp] = wb;
  __syncthreads();
  if (threadIdx.x == 0) {
    const int warps = static_cast<int>(blockDim.x) >> 5;
    double ta = 0.0, tb = 0.0;
    for (int i = 0; i < warps; ++i) ta += s_a[i], tb += s_b[i];
    q[0] = ta, q[1] = tb;
  }
}

// Training statistics pass (batch norm's x, the LKA gate's F3): per (image,
// channel, chunk) block the sums of d and d^2, d = x - x[0, ch, 0] (the shift
// keeps the single-pass variance free of cancellation), into the partials.
// Internal linkage, a copy per .cu (as their own kernels): the emulator's
// __launch_bounds__ attribute breaks the link of a kernel shared by COMDAT.
namespace {
template <typename T>
__global__ void __launch_bounds__(kMaxThreads)
    shifted_stats_kernel(int n, int c, int64_t hw, int64_t len, const T* __restrict__ x, double* __restrict__ part) {
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
}  // namespace

// A channel's totals over the partials of every (image, chunk): called by
// all 32 lanes of a warp, every lane gets them. per = n * chunks.
__device__ __forceinline__ void channel_totals(const double* part, int ch, int per, double& s1, double& s2) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const double* q = part + int64_t(ch) * per * 2;
  double a = 0.0, b = 0.0;
  for (int j = lane; j < per; j += 32) a += q[2 * j], b += q[2 * j + 1];
  s1 = warp_sum(a), s2 = warp_sum(b);
}

// ------------------------------------------------------------ batch norm

// The normalisation as z = scale * x + shift, from the statistics as the
// forward saves them (float), in double: the forward and the backward (which
// sees only the saved values) compute the same z.
struct Affine {
  float scale, shift, mean, invstd;
};
__device__ __forceinline__ Affine affine_of(float gamma, float beta, float mean, float invstd) {
  const double gi = static_cast<double>(gamma) * static_cast<double>(invstd);
  return {static_cast<float>(gi), static_cast<float>(static_cast<double>(beta) - static_cast<double>(mean) * gi), mean,
          invstd};
}

// A forward's per-channel step, by the 32 lanes of warp 0: the statistics
// (training: from the partials of d = x - shift, shift = x[0, c, 0];
// evaluation: the running statistics) into coef = (scale, shift) in shared
// memory; the channel's writer block updates the running statistics
// (training) and saves mean and invstd. A barrier must follow before coef
// is read.
__device__ __forceinline__ void bn_channel_fwd(const Block& b, int n, int64_t hw, int chunks, float shift,
                                               const double* part, const float* gamma, const float* beta,
                                               float* running_mean, float* running_var, bool training,
                                               double momentum, double eps, float* save_mean, float* save_invstd,
                                               float* coef) {
  const double m = static_cast<double>(n) * static_cast<double>(hw);
  double mean = 0.0, var = 0.0;
  if (training) {
    double s1, s2;
    channel_totals(part, b.ch, n * chunks, s1, s2);
    const double md = s1 / m;
    var = s2 / m - md * md;
    var = var > 0.0 ? var : 0.0;
    mean = static_cast<double>(shift) + md;
  }
  if (threadIdx.x != 0) return;
  if (!training) mean = running_mean[b.ch], var = running_var[b.ch];
  const float mean_f = static_cast<float>(mean), invstd_f = static_cast<float>(1.0 / sqrt(var + eps));
  const Affine a = affine_of(gamma[b.ch], beta[b.ch], mean_f, invstd_f);
  coef[0] = a.scale, coef[1] = a.shift;
  if (!writes_channel(b)) return;
  if (training) {
    running_mean[b.ch] = static_cast<float>((1 - momentum) * running_mean[b.ch] + momentum * mean);
    running_var[b.ch] = static_cast<float>((1 - momentum) * running_var[b.ch] + momentum * var * m / (m - 1));
  }
  save_mean[b.ch] = mean_f;
  save_invstd[b.ch] = invstd_f;
}

// The forward's (scale, shift) of the block's channel, for every thread: warp
// 0 runs bn_channel_fwd into shared memory, one barrier, all read it. Every
// thread calls it; nothing may reuse its shared memory after it.
struct ScaleShift {
  float scale, shift;
};
__device__ __forceinline__ ScaleShift bn_channel_coefs(const Block& b, int n, int64_t hw, int chunks, float shift,
                                                       const double* part, const float* gamma, const float* beta,
                                                       float* running_mean, float* running_var, bool training,
                                                       double momentum, double eps, float* save_mean,
                                                       float* save_invstd) {
  LK_SHARED(float, coef, [2]);
  if (threadIdx.x < 32)
    bn_channel_fwd(b, n, hw, chunks, shift, part, gamma, beta, running_mean, running_var, training, momentum, eps,
                   save_mean, save_invstd, coef);
  __syncthreads();
  return {coef[0], coef[1]};
}

// A backward's per-channel step, by the 32 lanes of warp 0: the totals
// (sum g, sum g * (x - mean)) of the partials when `sums`; the writer block
// adds (acc_*) or writes dgamma (sum g * xhat) and dbeta (sum g); coef = (mean(g),
// mean(g * xhat) * invstd) in training, zero in evaluation. A barrier must
// follow before coef is read.
__device__ __forceinline__ void bn_channel_bwd(const Block& b, int n, int64_t hw, int chunks, bool sums,
                                               bool training, float invstd, const double* part, float* dgamma,
                                               float* dbeta, bool acc_dgamma, bool acc_dbeta, float* coef) {
  double sg = 0.0, sgx = 0.0;
  if (sums) channel_totals(part, b.ch, n * chunks, sg, sgx);
  if (threadIdx.x != 0) return;
  sgx *= invstd;  // sum g * xhat
  if (writes_channel(b)) {
    if (dgamma) dgamma[b.ch] = static_cast<float>(sgx) + (acc_dgamma ? dgamma[b.ch] : 0.f);
    if (dbeta) dbeta[b.ch] = static_cast<float>(sg) + (acc_dbeta ? dbeta[b.ch] : 0.f);
  }
  const double m = static_cast<double>(n) * static_cast<double>(hw);
  coef[0] = training ? static_cast<float>(sg / m) : 0.f;
  coef[1] = training ? static_cast<float>(sgx / m * invstd) : 0.f;
}

}  // namespace plane_chunks
LK_CUDA_NAMESPACE_END
