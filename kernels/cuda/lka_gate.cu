// The LKA tail Y = X * sigmoid(BN(F3)), fused, float. Per-channel reductions
// go per (image, channel, chunk) block into the workspace (double), then a warp
// per channel adds them in a fixed order; the elementwise passes recompute A
// from F3 rather than storing it.
#include <climits>
#include <cstdint>

#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/lka_gate.h"
#include "kernels/cuda/warp_reduce.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kThreads = kLkaGateThreads;
constexpr int kWarps = kThreads / 32;

int chunk_count(int64_t hw) {
  const int64_t per = int64_t(kThreads) * kLkaGateItems;
  const int64_t ch = (hw + per - 1) / per;
  return static_cast<int>(ch < 1 ? 1 : (ch > kLkaGateMaxChunks ? kLkaGateMaxChunks : ch));
}
int64_t chunk_len(int64_t hw, int chunks) { return (hw + chunks - 1) / chunks; }

// Workspace: [partials c*n*chunks*2 double][per-channel coefficients c*2 float]
struct Layout {
  size_t part, coef, total;
};
Layout layout(int64_t n, int64_t c, int64_t hw) {
  Layout l{};
  l.part = 0;
  l.coef = static_cast<size_t>(c * n) * static_cast<size_t>(chunk_count(hw)) * 2 * sizeof(double);
  l.total = l.coef + static_cast<size_t>(c) * 2 * sizeof(float);
  return l;
}

// Stable for large |z|: the exponential only sees a non-positive argument
// (the formula of kernels/activation.cpp).
__device__ __forceinline__ float sigmoid(float z) {
  const float e = expf(-fabsf(z));
  return z >= 0.f ? 1.f / (1.f + e) : e / (1.f + e);
}

// BN as an affine map z = scale * f + shift, in double as batch_norm_fwd.
__device__ __forceinline__ void batch_norm_affine(float gamma, float beta, double mean, double invstd, float& scale,
                                                  float& shift) {
  scale = static_cast<float>(gamma * invstd);
  shift = static_cast<float>(beta - mean * gamma * invstd);
}

// Block-wide sum of (a, b) in a fixed order, stored by thread 0 at q[0..1].
__device__ void block_sum2_store(float a, float b, double* q) {
  LK_SHARED(double, s_a, [kWarps]);
  LK_SHARED(double, s_b, [kWarps]);
  const double wa = warp_sum(static_cast<double>(a)), wb = warp_sum(static_cast<double>(b));
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  if (lane == 0) s_a[warp] = wa, s_b[warp] = wb;
  __syncthreads();
  if (threadIdx.x == 0) {
    double ta = 0.0, tb = 0.0;
    for (int i = 0; i < kWarps; ++i) ta += s_a[i], tb += s_b[i];
    q[0] = ta, q[1] = tb;
  }
}

struct Block {
  int plane, img, ch;
  int64_t start, end;  // pixel range of the chunk
};
__device__ __forceinline__ Block block_of(int c, int64_t hw, int64_t len) {
  Block b;
  b.plane = static_cast<int>(blockIdx.x);
  b.img = b.plane / c;
  b.ch = b.plane - b.img * c;
  b.start = int64_t(blockIdx.y) * len;
  b.end = b.start + len < hw ? b.start + len : hw;
  return b;
}
__device__ __forceinline__ double* part_of(double* part, const Block& b, int n) {
  return part + ((int64_t(b.ch) * n + b.img) * gridDim.y + blockIdx.y) * 2;
}

// Training statistics: sum of d and d^2, d = f3 - f3[0, ch, 0] (the shift
// keeps the single-pass variance free of cancellation).
__global__ void __launch_bounds__(kThreads)
    stats_kernel(int n, int c, int64_t hw, int64_t len, const float* __restrict__ f3, double* __restrict__ part) {
  const Block b = block_of(c, hw, len);
  const float shift = __ldg(f3 + int64_t(b.ch) * hw);
  const float* f = f3 + int64_t(b.plane) * hw;
  float s1 = 0.f, s2 = 0.f;
  for (int64_t p = b.start + threadIdx.x; p < b.end; p += kThreads) {
    const float d = f[p] - shift;
    s1 += d;
    s2 += d * d;
  }
  block_sum2_store(s1, s2, part_of(part, b, n));
}

// A warp per channel (a block has kWarps channels): statistics, running
// stats (training), save_mean / save_invstd and the BN scale/shift.
__global__ void __launch_bounds__(kThreads)
    fwd_finalize_kernel(int n, int c, int64_t hw, int chunks, const float* __restrict__ f3,
                        const double* __restrict__ part, const float* __restrict__ gamma,
                        const float* __restrict__ beta, float* __restrict__ running_mean,
                        float* __restrict__ running_var, bool training, double momentum, double eps,
                        float* __restrict__ save_mean, float* __restrict__ save_invstd, float* __restrict__ coef) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int ch = static_cast<int>(blockIdx.x) * kWarps + (static_cast<int>(threadIdx.x) >> 5);
  if (ch >= c) return;  // whole warps: no barrier follows
  double mean, var;
  if (training) {
    const int per = n * chunks;
    const double* q = part + int64_t(ch) * per * 2;
    double s1 = 0.0, s2 = 0.0;
    for (int j = lane; j < per; j += 32) s1 += q[2 * j], s2 += q[2 * j + 1];
    s1 = warp_sum(s1), s2 = warp_sum(s2);
    const double m = static_cast<double>(n) * static_cast<double>(hw);
    const double md = s1 / m;
    var = s2 / m - md * md;
    var = var > 0.0 ? var : 0.0;
    mean = static_cast<double>(__ldg(f3 + int64_t(ch) * hw)) + md;
    if (lane == 0) {
      running_mean[ch] = static_cast<float>((1 - momentum) * running_mean[ch] + momentum * mean);
      running_var[ch] = static_cast<float>((1 - momentum) * running_var[ch] + momentum * var * m / (m - 1));
    }
  } else {
    mean = running_mean[ch];
    var = running_var[ch];
  }
  if (lane == 0) {
    const double invstd = 1.0 / sqrt(var + eps);
    save_mean[ch] = static_cast<float>(mean);
    save_invstd[ch] = static_cast<float>(invstd);
    float scale, shift;
    batch_norm_affine(gamma[ch], beta[ch], mean, invstd, scale, shift);
    coef[2 * ch] = scale;
    coef[2 * ch + 1] = shift;
  }
}

__global__ void __launch_bounds__(kThreads)
    fwd_apply_kernel(int c, int64_t hw, int64_t len, const float* __restrict__ x, const float* __restrict__ f3,
                     const float* __restrict__ coef, float* __restrict__ y, float* __restrict__ a_out) {
  const Block b = block_of(c, hw, len);
  const float scale = __ldg(coef + 2 * b.ch), shift = __ldg(coef + 2 * b.ch + 1);
  const int64_t off = int64_t(b.plane) * hw;
  for (int64_t p = b.start + threadIdx.x; p < b.end; p += kThreads) {
    const float a = sigmoid(scale * f3[off + p] + shift);
    y[off + p] = x[off + p] * a;
    if (a_out) a_out[off + p] = a;
  }
}

// Per-element backward quantities from the saved statistics.
struct BwdChannel {
  float scale, shift, mean, invstd;
};
__device__ __forceinline__ BwdChannel bwd_channel(int ch, const float* gamma, const float* beta,
                                                  const float* save_mean, const float* save_invstd) {
  BwdChannel k;
  k.mean = __ldg(save_mean + ch);
  k.invstd = __ldg(save_invstd + ch);
  batch_norm_affine(__ldg(gamma + ch), __ldg(beta + ch), k.mean, k.invstd, k.scale, k.shift);
  return k;
}

// dx += dy * A; partial sums of dZ and dZ * xhat.
__global__ void __launch_bounds__(kThreads)
    bwd_reduce_kernel(int n, int c, int64_t hw, int64_t len, const float* __restrict__ dy, const float* __restrict__ x,
                      const float* __restrict__ f3, const float* __restrict__ gamma, const float* __restrict__ beta,
                      const float* __restrict__ save_mean, const float* __restrict__ save_invstd,
                      float* __restrict__ dx, double* __restrict__ part, bool acc_dx) {
  const Block b = block_of(c, hw, len);
  const BwdChannel k = bwd_channel(b.ch, gamma, beta, save_mean, save_invstd);
  const int64_t off = int64_t(b.plane) * hw;
  float sdz = 0.f, sdzx = 0.f;
  for (int64_t p = b.start + threadIdx.x; p < b.end; p += kThreads) {
    const float f = f3[off + p], g = dy[off + p];
    const float a = sigmoid(k.scale * f + k.shift);
    if (dx) lk_put_grad(dx[off + p], g * a, acc_dx);
    const float dz = g * x[off + p] * a * (1.f - a);
    sdz += dz;
    sdzx += dz * ((f - k.mean) * k.invstd);
  }
  block_sum2_store(sdz, sdzx, part_of(part, b, n));
}

// A warp per channel: dgamma, dbeta and the dF3 coefficients mean(dZ),
// mean(dZ * xhat) (training) into coef.
__global__ void __launch_bounds__(kThreads)
    bwd_finalize_kernel(int n, int c, int64_t hw, int chunks, const double* __restrict__ part, bool training,
                        float* __restrict__ dgamma, float* __restrict__ dbeta, float* __restrict__ coef,
                        bool acc_dgamma, bool acc_dbeta) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int ch = static_cast<int>(blockIdx.x) * kWarps + (static_cast<int>(threadIdx.x) >> 5);
  if (ch >= c) return;  // whole warps: no barrier follows
  const int per = n * chunks;
  const double* q = part + int64_t(ch) * per * 2;
  double sdz = 0.0, sdzx = 0.0;
  for (int j = lane; j < per; j += 32) sdz += q[2 * j], sdzx += q[2 * j + 1];
  sdz = warp_sum(sdz), sdzx = warp_sum(sdzx);
  if (lane == 0) {
    if (dgamma) lk_put_grad(dgamma[ch], static_cast<float>(sdzx), acc_dgamma);
    if (dbeta) lk_put_grad(dbeta[ch], static_cast<float>(sdz), acc_dbeta);
    const double m = static_cast<double>(n) * static_cast<double>(hw);
    coef[2 * ch] = training ? static_cast<float>(sdz / m) : 0.f;
    coef[2 * ch + 1] = training ? static_cast<float>(sdzx / m) : 0.f;
  }
}

// df3 += gamma*invstd * (dZ - mean(dZ) - xhat * mean(dZ * xhat)) (the means are 0 in evaluation).
__global__ void __launch_bounds__(kThreads)
    bwd_apply_kernel(int c, int64_t hw, int64_t len, const float* __restrict__ dy, const float* __restrict__ x,
                     const float* __restrict__ f3, const float* __restrict__ gamma, const float* __restrict__ beta,
                     const float* __restrict__ save_mean, const float* __restrict__ save_invstd,
                     const float* __restrict__ coef, float* __restrict__ df3, bool acc_df3) {
  const Block b = block_of(c, hw, len);
  const BwdChannel k = bwd_channel(b.ch, gamma, beta, save_mean, save_invstd);
  const float gi = static_cast<float>(static_cast<double>(__ldg(gamma + b.ch)) * k.invstd);
  const float m_dz = __ldg(coef + 2 * b.ch), m_dzx = __ldg(coef + 2 * b.ch + 1);
  const int64_t off = int64_t(b.plane) * hw;
  for (int64_t p = b.start + threadIdx.x; p < b.end; p += kThreads) {
    const float f = f3[off + p];
    const float a = sigmoid(k.scale * f + k.shift);
    const float dz = dy[off + p] * x[off + p] * a * (1.f - a);
    lk_put_grad(df3[off + p], gi * (dz - m_dz - (f - k.mean) * k.invstd * m_dzx), acc_df3);
  }
}

bool bad_sizes(int64_t n, int64_t c, int64_t hw) {
  return n < 0 || hw < 0 || c <= 0 || n * c > INT_MAX || n * int64_t(chunk_count(hw)) * 2 > INT_MAX;
}

unsigned channel_blocks(int64_t c) { return static_cast<unsigned>((c + kWarps - 1) / kWarps); }

bool workspace_ok(const void* ws, size_t bytes, const Layout& l) {
  return ws && bytes >= l.total && reinterpret_cast<uintptr_t>(ws) % 8 == 0;
}

}  // namespace

size_t lka_gate_workspace_bytes(int64_t n, int64_t c, int64_t hw) { return layout(n, c, hw).total; }

cudaError_t lka_gate_fwd(int64_t n, int64_t c, int64_t hw, const float* x, const float* f3, const float* gamma,
                         const float* beta, float* running_mean, float* running_var, bool training, double momentum,
                         double eps, float* y, float* save_mean, float* save_invstd, float* a_out, void* workspace,
                         size_t workspace_bytes, cudaStream_t stream) {
  if (bad_sizes(n, c, hw)) return cudaErrorInvalidValue;
  const Layout l = layout(n, c, hw);
  if (!workspace_ok(workspace, workspace_bytes, l) || !save_mean || !save_invstd || !running_mean || !running_var)
    return cudaErrorInvalidValue;
  if (n == 0 || hw == 0) return cudaSuccess;
  auto* part = reinterpret_cast<double*>(static_cast<char*>(workspace) + l.part);
  auto* coef = reinterpret_cast<float*>(static_cast<char*>(workspace) + l.coef);
  const int chunks = chunk_count(hw);
  const int64_t len = chunk_len(hw, chunks);
  const dim3 grid(static_cast<unsigned>(n * c), static_cast<unsigned>(chunks));
  cudaError_t e;
  if (training) {
    e = LK_LAUNCH(stats_kernel, grid, kThreads, 0, stream)(static_cast<int>(n), static_cast<int>(c), hw, len, f3,
                                                            part);
    if (e != cudaSuccess) return e;
  }
  e = LK_LAUNCH(fwd_finalize_kernel, channel_blocks(c), kThreads, 0, stream)(
      static_cast<int>(n), static_cast<int>(c), hw, chunks, f3, part, gamma, beta, running_mean, running_var, training,
      momentum, eps, save_mean, save_invstd, coef);
  if (e != cudaSuccess) return e;
  return LK_LAUNCH(fwd_apply_kernel, grid, kThreads, 0, stream)(static_cast<int>(c), hw, len, x, f3, coef, y, a_out);
}

cudaError_t lka_gate_bwd(int64_t n, int64_t c, int64_t hw, const float* dy, const float* x, const float* f3,
                         const float* gamma, const float* beta, const float* save_mean, const float* save_invstd,
                         bool training, float* dx, float* df3, float* dgamma, float* dbeta, void* workspace,
                         size_t workspace_bytes, cudaStream_t stream, bool acc_dx, bool acc_df3, bool acc_dgamma,
                         bool acc_dbeta) {
  if (bad_sizes(n, c, hw)) return cudaErrorInvalidValue;
  const Layout l = layout(n, c, hw);
  if (!workspace_ok(workspace, workspace_bytes, l)) return cudaErrorInvalidValue;
  if (n == 0 || hw == 0 || (!dx && !df3 && !dgamma && !dbeta)) return cudaSuccess;
  auto* part = reinterpret_cast<double*>(static_cast<char*>(workspace) + l.part);
  auto* coef = reinterpret_cast<float*>(static_cast<char*>(workspace) + l.coef);
  const int chunks = chunk_count(hw);
  const int64_t len = chunk_len(hw, chunks);
  const dim3 grid(static_cast<unsigned>(n * c), static_cast<unsigned>(chunks));
  cudaError_t e = LK_LAUNCH(bwd_reduce_kernel, grid, kThreads, 0, stream)(
      static_cast<int>(n), static_cast<int>(c), hw, len, dy, x, f3, gamma, beta, save_mean, save_invstd, dx, part,
      acc_dx);
  if (e != cudaSuccess || (!df3 && !dgamma && !dbeta)) return e;
  e = LK_LAUNCH(bwd_finalize_kernel, channel_blocks(c), kThreads, 0, stream)(
      static_cast<int>(n), static_cast<int>(c), hw, chunks, part, training, dgamma, dbeta, coef, acc_dgamma, acc_dbeta);
  if (e != cudaSuccess || !df3) return e;
  return LK_LAUNCH(bwd_apply_kernel, grid, kThreads, 0, stream)(static_cast<int>(c), hw, len, dy, x, f3, gamma, beta,
                                                                 save_mean, save_invstd, coef, df3, acc_df3);
}

LK_CUDA_NAMESPACE_END
