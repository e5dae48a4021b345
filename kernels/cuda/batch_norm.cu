// Batch normalisation forward and backward on the planes x chunks grid
// (plane_chunks.cuh), plain or fused with ReLU and a residual add (the
// epilogue E), for every storage type T (float, bf16, f16; statistics and
// arithmetic in float / double). Training forward: a statistics pass (per
// block: the sums of d = x - x[0, c, 0] and d^2, single pass, the shift
// keeping the variance free of cancellation), then an apply pass whose
// blocks each add their channel's partials (fixed order) and normalise.
// Backward: a reduction pass (sum g, sum g * (x - mean), g = dy through the
// ReLU's mask; the residual's gradient written on the way) and an apply pass
// that finalises the sums the same way and writes dx. A small channel (n * hw
// <= kBatchNormWholeChannel) is one block doing both passes in one launch.
#include <climits>
#include <cmath>

#include "kernels/cuda/batch_norm.h"
#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/plane_chunks.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

using namespace plane_chunks;

// What follows z = scale * x + shift.
enum Epi : int { kPlain, kRelu, kReluAdd /* relu(z) + r */, kAddRelu /* relu(z + r) */ };

template <int E>
__device__ __forceinline__ float epilogue(float z, float r) {
  if constexpr (E == kPlain) return z;
  if constexpr (E == kRelu) return z > 0.f ? z : 0.f;
  if constexpr (E == kReluAdd) return (z > 0.f ? z : 0.f) + r;
  const float v = z + r;
  return v > 0.f ? v : 0.f;
}

// dy through the ReLU: the mask recomputed from x (relu(z)), or read off y
// (relu(z + r): y > 0 exactly where z + r > 0).
template <int E, typename T>
__device__ __forceinline__ float masked(const T* dy, const T* x, const T* y, const Affine& a, int64_t j) {
  const float g = static_cast<float>(dy[j]);
  if constexpr (E == kPlain) return g;
  if constexpr (E == kAddRelu) return static_cast<float>(y[j]) > 0.f ? g : 0.f;
  return a.scale * static_cast<float>(x[j]) + a.shift > 0.f ? g : 0.f;
}

// One element i of each pass: y = E(scale * x + shift, r); the backward's
// sums s1 += g, s2 += g * (x - mean), with dr (+)= dy (kReluAdd) or g
// (kAddRelu) on the way; dx (+)= scale * (g - k0 - (x - mean) * k1).
template <int E, typename T>
__device__ __forceinline__ void fwd_elem(const T* x, const T* r, float scale, float shift, T* y, int64_t i) {
  const float rv = E == kReluAdd || E == kAddRelu ? static_cast<float>(r[i]) : 0.f;
  y[i] = static_cast<T>(epilogue<E>(scale * static_cast<float>(x[i]) + shift, rv));
}
template <int E, typename T>
__device__ __forceinline__ void bwd_sums_elem(const T* dy, const T* x, const T* y, const Affine& a, int64_t i, T* dr,
                                              bool acc_dr, float& s1, float& s2) {
  const float g = masked<E>(dy, x, y, a, i);
  s1 += g;
  s2 += g * (static_cast<float>(x[i]) - a.mean);
  if ((E == kReluAdd || E == kAddRelu) && dr) {
    const float v = E == kReluAdd ? static_cast<float>(dy[i]) : g;
    dr[i] = static_cast<T>(acc_dr ? static_cast<float>(dr[i]) + v : v);
  }
}
template <int E, typename T>
__device__ __forceinline__ void bwd_dx_elem(const T* dy, const T* x, const T* y, const Affine& a, float scale, float k0,
                                            float k1, int64_t i, T* dx, bool acc_dx) {
  const float v = scale * (masked<E>(dy, x, y, a, i) - k0 - (static_cast<float>(x[i]) - a.mean) * k1);
  dx[i] = static_cast<T>(acc_dx ? static_cast<float>(dx[i]) + v : v);
}

// Warp 0 finalises the channel's statistics (training: from the partials;
// evaluation: the running statistics) into coef = (scale, shift); the
// channel's writer block updates the running statistics and saves mean and
// invstd. Then every thread normalises its elements and applies E (r: the
// residual, read by kReluAdd / kAddRelu).
template <typename T, int E>
__global__ void __launch_bounds__(kMaxThreads)
    bn_fwd_apply_kernel(int n, int c, int64_t hw, int64_t len, int chunks, const T* __restrict__ x,
                        const T* __restrict__ r, const float* __restrict__ gamma, const float* __restrict__ beta,
                        float* __restrict__ running_mean, float* __restrict__ running_var, bool training,
                        double momentum, double eps, T* __restrict__ y, float* __restrict__ save_mean,
                        float* __restrict__ save_invstd, const double* __restrict__ part) {
  const Block b = block_of(c, hw, len);
  const float first = static_cast<float>(x[int64_t(b.ch) * hw]);  // the statistics' shift
  const auto [scale, shift] = bn_channel_coefs(b, n, hw, chunks, first, part, gamma, beta, running_mean, running_var,
                                               training, momentum, eps, save_mean, save_invstd);
  for (int64_t i = b.off + b.start + threadIdx.x; i < b.off + b.end; i += blockDim.x)
    fwd_elem<E>(x, r, scale, shift, y, i);
}

// Per block: sum g and sum g * (x - mean), g = dy through E's mask; the
// residual's gradient dr (+)= dy (kReluAdd) or g (kAddRelu) on the way.
template <typename T, int E>
__global__ void __launch_bounds__(kMaxThreads)
    bn_bwd_reduce_kernel(int n, int c, int64_t hw, int64_t len, const T* __restrict__ dy, const T* __restrict__ x,
                         const T* __restrict__ y, const float* __restrict__ gamma, const float* __restrict__ beta,
                         const float* __restrict__ save_mean, const float* __restrict__ save_invstd,
                         double* __restrict__ part, T* __restrict__ dr, bool acc_dr) {
  const Block b = block_of(c, hw, len);
  const Affine a = E == kRelu || E == kReluAdd
                       ? affine_of(gamma[b.ch], beta[b.ch], save_mean[b.ch], save_invstd[b.ch])
                       : Affine{0.f, 0.f, save_mean[b.ch], 0.f};
  float s1 = 0.f, s2 = 0.f;
  for (int64_t i = b.off + b.start + threadIdx.x; i < b.off + b.end; i += blockDim.x)
    bwd_sums_elem<E>(dy, x, y, a, i, dr, acc_dr, s1, s2);
  block_sum2_store(s1, s2, partial_of(part, b, n));
}

// Warp 0 finalises the channel's sums (when `sums`): the writer block adds
// (or writes) dgamma and dbeta; coef = (mean(g), mean(g * xhat) * invstd) in
// training, zero in evaluation. Then dx (+)= gamma*invstd * (g - coef0 - (x - mean) * coef1).
template <typename T, int E>
__global__ void __launch_bounds__(kMaxThreads)
    bn_bwd_apply_kernel(int n, int c, int64_t hw, int64_t len, int chunks, const T* __restrict__ dy,
                        const T* __restrict__ x, const T* __restrict__ y, const float* __restrict__ gamma,
                        const float* __restrict__ beta, const float* __restrict__ save_mean,
                        const float* __restrict__ save_invstd, bool training, bool sums, T* __restrict__ dx,
                        float* __restrict__ dgamma, float* __restrict__ dbeta, const double* __restrict__ part,
                        bool acc_dx, bool acc_dgamma, bool acc_dbeta) {
  LK_SHARED(float, coef, [2]);
  const Block b = block_of(c, hw, len);
  const Affine a = affine_of(gamma[b.ch], E == kPlain || E == kAddRelu ? 0.f : beta[b.ch], save_mean[b.ch],
                             save_invstd[b.ch]);
  if (threadIdx.x < 32)
    bn_channel_bwd(b, n, hw, chunks, sums, training, a.invstd, part, dgamma, dbeta, acc_dgamma, acc_dbeta, coef);
  __syncthreads();
  if (!dx) return;  // dgamma/dbeta only (no barrier follows)
  const float scale = gamma[b.ch] * a.invstd, k0 = coef[0], k1 = coef[1];
  for (int64_t i = b.off + b.start + threadIdx.x; i < b.off + b.end; i += blockDim.x)
    bwd_dx_elem<E>(dy, x, y, a, scale, k0, k1, i, dx, acc_dx);
}

// ------------------------------------------------- whole-channel kernels
// A channel of at most kBatchNormWholeChannel values (n * hw: the deep
// levels) is one block, which takes the statistics (or the backward's sums)
// and applies them in the same launch: one launch per pass instead of two,
// where a launch costs more than the pass. The plane_chunks helpers see the
// channel as one plane of m = n * hw elements in one chunk (n = 1).

// Element k of channel ch's n * hw values.
__device__ __forceinline__ int64_t channel_elem(int c, int64_t hw, int ch, int64_t k) {
  const int64_t img = k / hw;
  return (img * c + ch) * hw + (k - img * hw);
}
__device__ __forceinline__ Block whole_channel(int64_t m) {
  Block b;
  b.plane = b.ch = static_cast<int>(blockIdx.x);
  b.img = 0;
  b.start = b.off = 0;
  b.end = m;
  return b;
}

// The training forward: shifted sums (as shifted_stats_kernel), the channel's
// (scale, shift) (as bn_fwd_apply_kernel), y.
template <typename T, int E>
__global__ void __launch_bounds__(kMaxThreads)
    bn_fwd_whole_kernel(int c, int64_t hw, int64_t m, const T* __restrict__ x, const T* __restrict__ r,
                        const float* __restrict__ gamma, const float* __restrict__ beta,
                        float* __restrict__ running_mean, float* __restrict__ running_var, double momentum,
                        double eps, T* __restrict__ y, float* __restrict__ save_mean,
                        float* __restrict__ save_invstd, double* __restrict__ part) {
  const Block b = whole_channel(m);
  const float first = static_cast<float>(x[int64_t(b.ch) * hw]);
  float s1 = 0.f, s2 = 0.f;
  for (int64_t k = threadIdx.x; k < m; k += blockDim.x) {
    const float d = static_cast<float>(x[channel_elem(c, hw, b.ch, k)]) - first;
    s1 += d;
    s2 += d * d;
  }
  block_sum2_store(s1, s2, partial_of(part, b, 1));
  __syncthreads();  // the channel's sums (thread 0's) before warp 0 reads them
  const auto [scale, shift] = bn_channel_coefs(b, 1, m, 1, first, part, gamma, beta, running_mean, running_var, true,
                                               momentum, eps, save_mean, save_invstd);
  for (int64_t k = threadIdx.x; k < m; k += blockDim.x) fwd_elem<E>(x, r, scale, shift, y, channel_elem(c, hw, b.ch, k));
}

// The backward with its sums (as bn_bwd_reduce_kernel, dr on the way), then
// dgamma, dbeta and dx (as bn_bwd_apply_kernel).
template <typename T, int E>
__global__ void __launch_bounds__(kMaxThreads)
    bn_bwd_whole_kernel(int c, int64_t hw, int64_t m, const T* __restrict__ dy, const T* __restrict__ x,
                        const T* __restrict__ y, const float* __restrict__ gamma, const float* __restrict__ beta,
                        const float* __restrict__ save_mean, const float* __restrict__ save_invstd, bool training,
                        T* __restrict__ dx, T* __restrict__ dr, float* __restrict__ dgamma, float* __restrict__ dbeta,
                        double* __restrict__ part, bool acc_dx, bool acc_dr, bool acc_dgamma, bool acc_dbeta) {
  LK_SHARED(float, coef, [2]);
  const Block b = whole_channel(m);
  const Affine a = affine_of(gamma[b.ch], E == kRelu || E == kReluAdd ? beta[b.ch] : 0.f, save_mean[b.ch],
                             save_invstd[b.ch]);
  float s1 = 0.f, s2 = 0.f;
  for (int64_t k = threadIdx.x; k < m; k += blockDim.x)
    bwd_sums_elem<E>(dy, x, y, a, channel_elem(c, hw, b.ch, k), dr, acc_dr, s1, s2);
  block_sum2_store(s1, s2, partial_of(part, b, 1));
  __syncthreads();  // the channel's sums (thread 0's) before warp 0 reads them
  if (threadIdx.x < 32)
    bn_channel_bwd(b, 1, m, 1, true, training, a.invstd, part, dgamma, dbeta, acc_dgamma, acc_dbeta, coef);
  __syncthreads();
  if (!dx) return;  // no barrier follows
  const float scale = gamma[b.ch] * a.invstd, k0 = coef[0], k1 = coef[1];
  for (int64_t k = threadIdx.x; k < m; k += blockDim.x)
    bwd_dx_elem<E>(dy, x, y, a, scale, k0, k1, channel_elem(c, hw, b.ch, k), dx, acc_dx);
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

int epi_of(BnResidual mode) {
  return mode == BnResidual::AfterRelu ? kReluAdd : mode == BnResidual::BeforeRelu ? kAddRelu : kRelu;
}

template <typename T, int E>
cudaError_t fwd_impl(int64_t n, int64_t c, int64_t hw, const T* x, const T* r, const float* gamma, const float* beta,
                     float* running_mean, float* running_var, bool training, double momentum, double eps, T* y,
                     float* save_mean, float* save_invstd, void* workspace, size_t workspace_bytes,
                     cudaStream_t stream) {
  if (!valid_sizes(n, c, hw)) return cudaErrorInvalidValue;
  if (n * c * hw == 0) return cudaSuccess;
  if (training && n * hw < 2) return cudaErrorInvalidValue;
  if (training && !workspace_ok(workspace, workspace_bytes, n, c, hw)) return cudaErrorInvalidValue;
  if ((E == kReluAdd || E == kAddRelu) && !r) return cudaErrorInvalidValue;
  const Shape s = shape_for(hw);
  const dim3 grid = grid_of(n, c, s);
  const int ni = static_cast<int>(n), ci = static_cast<int>(c);
  auto* part = static_cast<double*>(workspace);
  if (training && n * hw <= kBatchNormWholeChannel)
    return LK_LAUNCH((bn_fwd_whole_kernel<T, E>), dim3(static_cast<unsigned>(c)), threads_for(n * hw), 0, stream)(
        ci, hw, n * hw, x, r, gamma, beta, running_mean, running_var, momentum, eps, y, save_mean, save_invstd, part);
  if (training) {
    const cudaError_t e = LK_LAUNCH(shifted_stats_kernel<T>, grid, s.threads, 0, stream)(ni, ci, hw, s.len, x, part);
    if (e != cudaSuccess) return e;
  }
  return LK_LAUNCH((bn_fwd_apply_kernel<T, E>), grid, s.threads, 0, stream)(
      ni, ci, hw, s.len, s.chunks, x, r, gamma, beta, running_mean, running_var, training, momentum, eps, y, save_mean,
      save_invstd, part);
}

template <typename T, int E>
cudaError_t bwd_impl(int64_t n, int64_t c, int64_t hw, const T* dy, const T* x, const T* y, const float* gamma,
                     const float* beta, const float* save_mean, const float* save_invstd, bool training, T* dx, T* dr,
                     float* dgamma, float* dbeta, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                     bool acc_dx, bool acc_dr, bool acc_dgamma, bool acc_dbeta) {
  if (!valid_sizes(n, c, hw)) return cudaErrorInvalidValue;
  if (n * c * hw == 0 || (!dx && !dr && !dgamma && !dbeta)) return cudaSuccess;
  if ((E == kAddRelu && !y) || ((E == kRelu || E == kReluAdd) && !beta)) return cudaErrorInvalidValue;
  const bool sums = (training && dx) || dgamma || dbeta;
  if (sums && !workspace_ok(workspace, workspace_bytes, n, c, hw)) return cudaErrorInvalidValue;
  const Shape s = shape_for(hw);
  const int ni = static_cast<int>(n), ci = static_cast<int>(c);
  auto* part = static_cast<double*>(workspace);
  if (sums && n * hw <= kBatchNormWholeChannel)
    return LK_LAUNCH((bn_bwd_whole_kernel<T, E>), dim3(static_cast<unsigned>(c)), threads_for(n * hw), 0, stream)(
        ci, hw, n * hw, dy, x, y, gamma, beta, save_mean, save_invstd, training, dx, dr, dgamma, dbeta, part, acc_dx,
        acc_dr, acc_dgamma, acc_dbeta);
  if (sums || dr) {
    // The reduction pass also writes dr; with dr only, its sums go unused.
    if (!workspace_ok(workspace, workspace_bytes, n, c, hw)) return cudaErrorInvalidValue;
    const cudaError_t e = LK_LAUNCH((bn_bwd_reduce_kernel<T, E>), grid_of(n, c, s), s.threads, 0, stream)(
        ni, ci, hw, s.len, dy, x, y, gamma, beta, save_mean, save_invstd, part, dr, acc_dr);
    if (e != cudaSuccess) return e;
  }
  if (!dx && !dgamma && !dbeta) return cudaSuccess;
  // Without dx only the writer blocks (image 0, chunk 0 of each channel) have work.
  const dim3 grid = dx ? grid_of(n, c, s) : dim3(static_cast<unsigned>(c), 1u);
  return LK_LAUNCH((bn_bwd_apply_kernel<T, E>), grid, s.threads, 0, stream)(
      ni, ci, hw, s.len, s.chunks, dy, x, y, gamma, beta, save_mean, save_invstd, training, sums, dx, dgamma, dbeta,
      part, acc_dx, acc_dgamma, acc_dbeta);
}

}  // namespace

size_t batch_norm_workspace_bytes(int64_t n, int64_t c, int64_t hw) {
  return valid_sizes(n, c, hw) ? partial_bytes(n, c, hw) : 0;
}

template <typename T>
cudaError_t batch_norm_fwd(int64_t n, int64_t c, int64_t hw, const T* x, const float* gamma, const float* beta,
                           float* running_mean, float* running_var, bool training, double momentum, double eps, T* y,
                           float* save_mean, float* save_invstd, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream) {
  return fwd_impl<T, kPlain>(n, c, hw, x, nullptr, gamma, beta, running_mean, running_var, training, momentum, eps, y,
                             save_mean, save_invstd, workspace, workspace_bytes, stream);
}

template <typename T>
cudaError_t batch_norm_bwd(int64_t n, int64_t c, int64_t hw, const T* dy, const T* x, const float* gamma,
                           const float* save_mean, const float* save_invstd, bool training, T* dx, float* dgamma,
                           float* dbeta, void* workspace, size_t workspace_bytes, cudaStream_t stream, bool acc_dx,
                           bool acc_dgamma, bool acc_dbeta) {
  return bwd_impl<T, kPlain>(n, c, hw, dy, x, nullptr, gamma, nullptr, save_mean, save_invstd, training, dx, nullptr,
                             dgamma, dbeta, workspace, workspace_bytes, stream, acc_dx, false, acc_dgamma, acc_dbeta);
}

template <typename T>
cudaError_t batch_norm_relu_fwd(int64_t n, int64_t c, int64_t hw, const T* x, const float* gamma, const float* beta,
                                float* running_mean, float* running_var, bool training, double momentum, double eps,
                                const T* r, BnResidual mode, T* y, float* save_mean, float* save_invstd,
                                void* workspace, size_t workspace_bytes, cudaStream_t stream) {
#define LK_BN_FWD(E)                                                                                           \
  fwd_impl<T, E>(n, c, hw, x, r, gamma, beta, running_mean, running_var, training, momentum, eps, y, save_mean, \
                 save_invstd, workspace, workspace_bytes, stream)
  switch (epi_of(mode)) {
    case kReluAdd: return LK_BN_FWD(kReluAdd);
    case kAddRelu: return LK_BN_FWD(kAddRelu);
    default: return LK_BN_FWD(kRelu);
  }
#undef LK_BN_FWD
}

template <typename T>
cudaError_t batch_norm_relu_bwd(int64_t n, int64_t c, int64_t hw, BnResidual mode, const T* dy, const T* x,
                                const T* y, const float* gamma, const float* beta, const float* save_mean,
                                const float* save_invstd, bool training, T* dx, T* dr, float* dgamma, float* dbeta,
                                void* workspace, size_t workspace_bytes, cudaStream_t stream, bool acc_dx, bool acc_dr,
                                bool acc_dgamma, bool acc_dbeta) {
#define LK_BN_BWD(E, DR)                                                                                         \
  bwd_impl<T, E>(n, c, hw, dy, x, y, gamma, beta, save_mean, save_invstd, training, dx, DR, dgamma, dbeta,        \
                 workspace, workspace_bytes, stream, acc_dx, acc_dr, acc_dgamma, acc_dbeta)
  switch (epi_of(mode)) {
    case kReluAdd: return LK_BN_BWD(kReluAdd, dr);
    case kAddRelu: return LK_BN_BWD(kAddRelu, dr);
    default: return LK_BN_BWD(kRelu, nullptr);
  }
#undef LK_BN_BWD
}

#define LK_INST(T)                                                                                                  \
  template cudaError_t batch_norm_fwd<T>(int64_t, int64_t, int64_t, const T*, const float*, const float*, float*,   \
                                         float*, bool, double, double, T*, float*, float*, void*, size_t,           \
                                         cudaStream_t);                                                             \
  template cudaError_t batch_norm_bwd<T>(int64_t, int64_t, int64_t, const T*, const T*, const float*, const float*, \
                                         const float*, bool, T*, float*, float*, void*, size_t, cudaStream_t, bool, \
                                         bool, bool);                                                               \
  template cudaError_t batch_norm_relu_fwd<T>(int64_t, int64_t, int64_t, const T*, const float*, const float*,      \
                                              float*, float*, bool, double, double, const T*, BnResidual, T*,       \
                                              float*, float*, void*, size_t, cudaStream_t);                         \
  template cudaError_t batch_norm_relu_bwd<T>(int64_t, int64_t, int64_t, BnResidual, const T*, const T*, const T*,  \
                                              const float*, const float*, const float*, const float*, bool, T*, T*, \
                                              float*, float*, void*, size_t, cudaStream_t, bool, bool, bool, bool);
LK_INSTANTIATE_STORAGE(LK_INST)
#undef LK_INST

LK_CUDA_NAMESPACE_END
