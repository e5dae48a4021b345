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

// Both gradients in one launch: threads [0, nd) are dx's elements (nd = n*in
// when dx is wanted, else 0), the next out*in dw's (and, at k == 0, db's).
__global__ void __launch_bounds__(kThreads)
    linear_bwd_kernel(int64_t n, int64_t in, int64_t out, int64_t nd, int64_t total, const float* __restrict__ dy,
                      const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ dx,
                      float* __restrict__ dw, float* __restrict__ db, bool acc_dx, bool acc_dw, bool acc_db) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  if (i < nd) {
    const int64_t r = i / in, k = i % in;
    float acc = 0.f;
    for (int64_t o = 0; o < out; ++o) acc += dy[r * out + o] * w[o * in + k];
    lk_put_grad(dx[i], acc, acc_dx);
    return;
  }
  const int64_t j = i - nd, o = j / in, k = j % in;
  if (dw) {
    float acc = 0.f;
    for (int64_t r = 0; r < n; ++r) acc += dy[r * out + o] * x[r * in + k];
    lk_put_grad(dw[j], acc, acc_dw);
  }
  if (db && k == 0) {
    float s = 0.f;
    for (int64_t r = 0; r < n; ++r) s += dy[r * out + o];
    lk_put_grad(db[o], s, acc_db);
  }
}

}  // namespace

cudaError_t linear_fwd(int64_t n, int64_t in, int64_t out, const float* x, const float* w, const float* b, float* y,
                       cudaStream_t stream) {
  if (n * out == 0) return cudaSuccess;
  return LK_LAUNCH(linear_fwd_kernel, blocks_for(n * out), kThreads, 0, stream)(n, in, out, x, w, b, y);
}

cudaError_t linear_bwd(int64_t n, int64_t in, int64_t out, const float* dy, const float* x, const float* w, float* dx,
                       float* dw, float* db, cudaStream_t stream, bool acc_dx, bool acc_dw, bool acc_db) {
  const int64_t nd = dx ? n * in : 0, nw = dw || db ? out * in : 0;
  if (nd + nw == 0) return cudaSuccess;
  return LK_LAUNCH(linear_bwd_kernel, blocks_for(nd + nw), kThreads, 0, stream)(n, in, out, nd, nd + nw, dy, x, w, dx,
                                                                                dw, db, acc_dx, acc_dw, acc_db);
}

LK_CUDA_NAMESPACE_END
