// Linear layer kernels (see linear.h).
#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/linear.h"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kThreads = 128;

int blocks_for(int64_t n) { return static_cast<int>((n + kThreads - 1) / kThreads); }

__global__ void __launch_bounds__(kThreads)
    linear_fwd_kernel(int64_t n, int64_t in, int64_t out, const float* __restrict__ x, const float* __restrict__ w,
                      const float* __restrict__ b, float* __restrict__ y) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * out) return;
  const int64_t r = i / out, o = i % out;
  float acc = b ? b[o] : 0.f;
  for (int64_t k = 0; k < in; ++k) acc += x[r * in + k] * w[o * in + k];
  y[i] = acc;
}

__global__ void __launch_bounds__(kThreads)
    linear_bwd_data_kernel(int64_t n, int64_t in, int64_t out, const float* __restrict__ dy,
                           const float* __restrict__ w, float* __restrict__ dx) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * in) return;
  const int64_t r = i / in, k = i % in;
  float acc = 0.f;
  for (int64_t o = 0; o < out; ++o) acc += dy[r * out + o] * w[o * in + k];
  dx[i] += acc;
}

__global__ void __launch_bounds__(kThreads)
    linear_bwd_weight_kernel(int64_t n, int64_t in, int64_t out, const float* __restrict__ dy,
                             const float* __restrict__ x, float* __restrict__ dw, float* __restrict__ db) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= out * in) return;
  const int64_t o = i / in, k = i % in;
  float acc = 0.f;
  for (int64_t r = 0; r < n; ++r) acc += dy[r * out + o] * x[r * in + k];
  if (dw) dw[i] += acc;
  if (db && k == 0) {
    float s = 0.f;
    for (int64_t r = 0; r < n; ++r) s += dy[r * out + o];
    db[o] += s;
  }
}

}  // namespace

cudaError_t linear_fwd(int64_t n, int64_t in, int64_t out, const float* x, const float* w, const float* b, float* y,
                       cudaStream_t stream) {
  if (n * out == 0) return cudaSuccess;
  return LK_LAUNCH(linear_fwd_kernel, blocks_for(n * out), kThreads, 0, stream)(n, in, out, x, w, b, y);
}

cudaError_t linear_bwd(int64_t n, int64_t in, int64_t out, const float* dy, const float* x, const float* w, float* dx,
                       float* dw, float* db, cudaStream_t stream) {
  if (dx && n * in > 0) {
    const cudaError_t e =
        LK_LAUNCH(linear_bwd_data_kernel, blocks_for(n * in), kThreads, 0, stream)(n, in, out, dy, w, dx);
    if (e != cudaSuccess) return e;
  }
  if ((dw || db) && out * in > 0)
    return LK_LAUNCH(linear_bwd_weight_kernel, blocks_for(out * in), kThreads, 0, stream)(n, in, out, dy, x, dw, db);
  return cudaSuccess;
}

LK_CUDA_NAMESPACE_END
