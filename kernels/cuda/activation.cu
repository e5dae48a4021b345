// ReLU and sigmoid, forward and backward, float. One thread per element in
// a grid-stride loop (the grid is capped, so large tensors loop).
#include "kernels/cuda/activation.h"
#include "kernels/cuda/cuda_compat.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

__global__ void __launch_bounds__(kActivationThreads)
    relu_fwd_kernel(int64_t n, const float* __restrict__ x, float* __restrict__ y) {
  const int64_t stride = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = x[i];
    y[i] = v > 0.f ? v : 0.f;
  }
}

// Stable for large |x|: the exponential only ever sees a non-positive argument.
__global__ void __launch_bounds__(kActivationThreads)
    sigmoid_fwd_kernel(int64_t n, const float* __restrict__ x, float* __restrict__ y) {
  const int64_t stride = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = x[i];
    const float e = __expf(-fabsf(v));
    y[i] = v >= 0.f ? __fdividef(1.f, 1.f + e) : __fdividef(e, 1.f + e);
  }
}

__global__ void __launch_bounds__(kActivationThreads)
    relu_bwd_kernel(int64_t n, const float* __restrict__ dy, const float* __restrict__ y, float* __restrict__ dx,
                    bool accumulate) {
  const int64_t stride = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    lk_put_grad(dx[i], y[i] > 0.f ? dy[i] : 0.f, accumulate);
}

__global__ void __launch_bounds__(kActivationThreads)
    sigmoid_bwd_kernel(int64_t n, const float* __restrict__ dy, const float* __restrict__ y, float* __restrict__ dx,
                       bool accumulate) {
  const int64_t stride = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float s = y[i];
    lk_put_grad(dx[i], dy[i] * s * (1.f - s), accumulate);
  }
}

int grid_for(int64_t n) {
  const int64_t blocks = (n + kActivationThreads - 1) / kActivationThreads;
  return static_cast<int>(blocks < kActivationMaxBlocks ? blocks : kActivationMaxBlocks);
}

}  // namespace

cudaError_t activation_fwd(Activation a, int64_t n, const float* x, float* y, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const int grid = grid_for(n);
  if (a == Activation::Relu) return LK_LAUNCH(relu_fwd_kernel, grid, kActivationThreads, 0, stream)(n, x, y);
  return LK_LAUNCH(sigmoid_fwd_kernel, grid, kActivationThreads, 0, stream)(n, x, y);
}

cudaError_t activation_bwd(Activation a, int64_t n, const float* dy, const float* y, float* dx,
                           cudaStream_t stream, bool accumulate) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const int grid = grid_for(n);
  if (a == Activation::Relu)
    return LK_LAUNCH(relu_bwd_kernel, grid, kActivationThreads, 0, stream)(n, dy, y, dx, accumulate);
  return LK_LAUNCH(sigmoid_bwd_kernel, grid, kActivationThreads, 0, stream)(n, dy, y, dx, accumulate);
}

LK_CUDA_NAMESPACE_END
