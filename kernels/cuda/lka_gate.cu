// The LKA tail Y = X * sigmoid(BN(F3)), fused, for every storage type T
// (float, bf16, f16; arithmetic in float, sums in double), on the planes x
// chunks grid (plane_chunks.cuh). Per-channel sums go per block into the
// workspace (double); each block of the next pass adds its channel's
// partials itself (fixed order); the elementwise passes recompute A from F3
// rather than storing it.
#include <climits>
#include <cstdint>

#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/lka_gate.h"
#include "kernels/cuda/plane_chunks.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

using namespace plane_chunks;

// Stable for large |z|: the exponential only sees a non-positive argument
// (the formula of kernels/activation.cpp).
__device__ __forceinline__ float sigmoid(float z) {
  const float e = expf(-fabsf(z));
  return z >= 0.f ? 1.f / (1.f + e) : e / (1.f + e);
}

// Warp 0: the channel's statistics and BN scale/shift (running and saved
// statistics by the writer block); then y = x * sigmoid(scale * f3 + shift).
template <typename T>
__global__ void __launch_bounds__(kMaxThreads)
    fwd_apply_kernel(int n, int c, int64_t hw, int64_t len, int chunks, const T* __restrict__ x,
                     const T* __restrict__ f3, const float* __restrict__ gamma, const float* __restrict__ beta,
                     float* __restrict__ running_mean, float* __restrict__ running_var, bool training,
                     double momentum, double eps, float* __restrict__ save_mean, float* __restrict__ save_invstd,
                     const double* __restrict__ part, T* __restrict__ y, T* __restrict__ a_out) {
  const Block b = block_of(c, hw, len);
  const float first = static_cast<float>(f3[int64_t(b.ch) * hw]);  // the statistics' shift
  const auto [scale, shift] = bn_channel_coefs(b, n, hw, chunks, first, part, gamma, beta, running_mean, running_var,
                                               training, momentum, eps, save_mean, save_invstd);
  for (int64_t p = b.start + threadIdx.x; p < b.end; p += blockDim.x) {
    const float a = sigmoid(scale * static_cast<float>(f3[b.off + p]) + shift);
    y[b.off + p] = static_cast<T>(static_cast<float>(x[b.off + p]) * a);
    if (a_out) a_out[b.off + p] = static_cast<T>(a);
  }
}

// dx (+)= dy * A; per block the sums of dZ and dZ * (f3 - mean), dZ = dy * x * A (1 - A).
template <typename T>
__global__ void __launch_bounds__(kMaxThreads)
    bwd_reduce_kernel(int n, int c, int64_t hw, int64_t len, const T* __restrict__ dy, const T* __restrict__ x,
                      const T* __restrict__ f3, const float* __restrict__ gamma, const float* __restrict__ beta,
                      const float* __restrict__ save_mean, const float* __restrict__ save_invstd, T* __restrict__ dx,
                      double* __restrict__ part, bool acc_dx) {
  const Block b = block_of(c, hw, len);
  const Affine k = affine_of(gamma[b.ch], beta[b.ch], save_mean[b.ch], save_invstd[b.ch]);
  float sdz = 0.f, sdzx = 0.f;
  for (int64_t p = b.start + threadIdx.x; p < b.end; p += blockDim.x) {
    const float f = static_cast<float>(f3[b.off + p]), g = static_cast<float>(dy[b.off + p]);
    const float a = sigmoid(k.scale * f + k.shift);
    if (dx) dx[b.off + p] = static_cast<T>(g * a + (acc_dx ? static_cast<float>(dx[b.off + p]) : 0.f));
    const float dz = g * static_cast<float>(x[b.off + p]) * a * (1.f - a);
    sdz += dz;
    sdzx += dz * (f - k.mean);
  }
  block_sum2_store(sdz, sdzx, partial_of(part, b, n));
}

// Warp 0: dgamma, dbeta (writer block) and the batch-statistics terms; then
// df3 (+)= gamma*invstd * (dZ - mean(dZ) - xhat * mean(dZ * xhat)) (the means are 0 in evaluation).
// 6 blocks per SM: with the bound alone ptxas held the f16 instance to 32
// registers on sm_90 (full occupancy) and spilled; 42 fit (docs/ptxas.md).
template <typename T>
__global__ void __launch_bounds__(kMaxThreads, 6)
    bwd_apply_kernel(int n, int c, int64_t hw, int64_t len, int chunks, const T* __restrict__ dy,
                     const T* __restrict__ x, const T* __restrict__ f3, const float* __restrict__ gamma,
                     const float* __restrict__ beta, const float* __restrict__ save_mean,
                     const float* __restrict__ save_invstd, bool training, const double* __restrict__ part,
                     T* __restrict__ df3, float* __restrict__ dgamma, float* __restrict__ dbeta, bool acc_df3,
                     bool acc_dgamma, bool acc_dbeta) {
  LK_SHARED(float, coef, [2]);
  const Block b = block_of(c, hw, len);
  const Affine k = affine_of(gamma[b.ch], beta[b.ch], save_mean[b.ch], save_invstd[b.ch]);
  if (threadIdx.x < 32)
    bn_channel_bwd(b, n, hw, chunks, true, training, k.invstd, part, dgamma, dbeta, acc_dgamma, acc_dbeta, coef);
  __syncthreads();
  if (!df3) return;  // dgamma/dbeta only (no barrier follows)
  const float gi = gamma[b.ch] * k.invstd, m_dz = coef[0], m_dzx = coef[1];
  for (int64_t p = b.start + threadIdx.x; p < b.end; p += blockDim.x) {
    const float f = static_cast<float>(f3[b.off + p]);
    const float a = sigmoid(k.scale * f + k.shift);
    const float dz = static_cast<float>(dy[b.off + p]) * static_cast<float>(x[b.off + p]) * a * (1.f - a);
    const float v = gi * (dz - m_dz - (f - k.mean) * m_dzx);
    df3[b.off + p] = static_cast<T>(acc_df3 ? static_cast<float>(df3[b.off + p]) + v : v);
  }
}

bool bad_sizes(int64_t n, int64_t c, int64_t hw) {
  return n < 0 || hw < 0 || c <= 0 || hw > INT_MAX || n * c > INT_MAX || n * int64_t(kMaxChunks) > INT_MAX;
}

bool workspace_ok(const void* ws, size_t bytes, int64_t n, int64_t c, int64_t hw) {
  return ws && bytes >= partial_bytes(n, c, hw) && reinterpret_cast<uintptr_t>(ws) % 8 == 0;
}

}  // namespace

size_t lka_gate_workspace_bytes(int64_t n, int64_t c, int64_t hw) {
  return bad_sizes(n, c, hw) ? 0 : partial_bytes(n, c, hw);
}

template <typename T>
cudaError_t lka_gate_fwd(int64_t n, int64_t c, int64_t hw, const T* x, const T* f3, const float* gamma,
                         const float* beta, float* running_mean, float* running_var, bool training, double momentum,
                         double eps, T* y, float* save_mean, float* save_invstd, T* a_out, void* workspace,
                         size_t workspace_bytes, cudaStream_t stream) {
  if (bad_sizes(n, c, hw)) return cudaErrorInvalidValue;
  if (!workspace_ok(workspace, workspace_bytes, n, c, hw) || !save_mean || !save_invstd || !running_mean ||
      !running_var)
    return cudaErrorInvalidValue;
  if (n == 0 || hw == 0) return cudaSuccess;
  auto* part = static_cast<double*>(workspace);
  const Shape s = shape_for(hw);
  const dim3 grid(static_cast<unsigned>(n * c), static_cast<unsigned>(s.chunks));
  const int ni = static_cast<int>(n), ci = static_cast<int>(c);
  if (training) {
    const cudaError_t e = LK_LAUNCH(shifted_stats_kernel<T>, grid, s.threads, 0, stream)(ni, ci, hw, s.len, f3, part);
    if (e != cudaSuccess) return e;
  }
  return LK_LAUNCH(fwd_apply_kernel<T>, grid, s.threads, 0, stream)(ni, ci, hw, s.len, s.chunks, x, f3, gamma, beta,
                                                                 running_mean, running_var, training, momentum, eps,
                                                                 save_mean, save_invstd, part, y, a_out);
}

template <typename T>
cudaError_t lka_gate_bwd(int64_t n, int64_t c, int64_t hw, const T* dy, const T* x, const T* f3, const float* gamma,
                         const float* beta, const float* save_mean, const float* save_invstd, bool training, T* dx,
                         T* df3, float* dgamma, float* dbeta, void* workspace,
                         size_t workspace_bytes, cudaStream_t stream, bool acc_dx, bool acc_df3, bool acc_dgamma,
                         bool acc_dbeta) {
  if (bad_sizes(n, c, hw)) return cudaErrorInvalidValue;
  if (!workspace_ok(workspace, workspace_bytes, n, c, hw)) return cudaErrorInvalidValue;
  if (n == 0 || hw == 0 || (!dx && !df3 && !dgamma && !dbeta)) return cudaSuccess;
  auto* part = static_cast<double*>(workspace);
  const Shape s = shape_for(hw);
  const dim3 grid(static_cast<unsigned>(n * c), static_cast<unsigned>(s.chunks));
  const int ni = static_cast<int>(n), ci = static_cast<int>(c);
  cudaError_t e = LK_LAUNCH(bwd_reduce_kernel<T>, grid, s.threads, 0, stream)(ni, ci, hw, s.len, dy, x, f3, gamma, beta,
                                                                           save_mean, save_invstd, dx, part, acc_dx);
  if (e != cudaSuccess || (!df3 && !dgamma && !dbeta)) return e;
  // Without df3 only the writer blocks (image 0, chunk 0 of each channel) have work.
  const dim3 grid2 = df3 ? grid : dim3(static_cast<unsigned>(c), 1u);
  return LK_LAUNCH(bwd_apply_kernel<T>, grid2, s.threads, 0, stream)(ni, ci, hw, s.len, s.chunks, dy, x, f3, gamma, beta,
                                                                  save_mean, save_invstd, training, part, df3, dgamma,
                                                                  dbeta, acc_df3, acc_dgamma, acc_dbeta);
}

#define LK_INST(T)                                                                                                 \
  template cudaError_t lka_gate_fwd<T>(int64_t, int64_t, int64_t, const T*, const T*, const float*, const float*,  \
                                       float*, float*, bool, double, double, T*, float*, float*, T*, void*, size_t, \
                                       cudaStream_t);                                                              \
  template cudaError_t lka_gate_bwd<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, const float*,      \
                                       const float*, const float*, const float*, bool, T*, T*, float*, float*,     \
                                       void*, size_t, cudaStream_t, bool, bool, bool, bool);
LK_INSTANTIATE_STORAGE(LK_INST)
#undef LK_INST

LK_CUDA_NAMESPACE_END
