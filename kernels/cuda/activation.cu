// ReLU and sigmoid, forward and backward, for every storage type (float,
// bf16, f16; arithmetic in float). One thread per element in a grid-stride
// loop (the grid is capped, so large tensors loop).
#include "kernels/cuda/activation.h"
#include "kernels/cuda/cuda_compat.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

template <typename T>
__global__ void __launch_bounds__(kActivationThreads)
    relu_fwd_kernel(int64_t n, const T* __restrict__ x, T* __restrict__ y) {
  const int64_t stride = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = static_cast<float>(x[i]);
    y[i] = static_cast<T>(v > 0.f ? v : 0.f);
  }
}

// Stable for large |x|: the exponential only ever sees a non-positive argument.
template <typename T>
__global__ void __launch_bounds__(kActivationThreads)
    sigmoid_fwd_kernel(int64_t n, const T* __restrict__ x, T* __restrict__ y) {
  const int64_t stride = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = static_cast<float>(x[i]);
    const float e = __expf(-fabsf(v));
    y[i] = static_cast<T>(v >= 0.f ? __fdividef(1.f, 1.f + e) : __fdividef(e, 1.f + e));
  }
}

template <typename T>
__global__ void __launch_bounds__(kActivationThreads)
    relu_bwd_kernel(int64_t n, const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx, bool acc) {
  const int64_t stride = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float g = static_cast<float>(y[i]) > 0.f ? static_cast<float>(dy[i]) : 0.f;
    dx[i] = static_cast<T>(acc ? static_cast<float>(dx[i]) + g : g);
  }
}

template <typename T>
__global__ void __launch_bounds__(kActivationThreads)
    sigmoid_bwd_kernel(int64_t n, const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx, bool acc) {
  const int64_t stride = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float s = static_cast<float>(y[i]);
    const float g = static_cast<float>(dy[i]) * s * (1.f - s);
    dx[i] = static_cast<T>(acc ? static_cast<float>(dx[i]) + g : g);
  }
}

int grid_for(int64_t n) {
  const int64_t blocks = (n + kActivationThreads - 1) / kActivationThreads;
  return static_cast<int>(blocks < kActivationMaxBlocks ? blocks : kActivationMaxBlocks);
}

}  // namespace

template <typename T>
cudaError_t activation_fwd(Activation a, int64_t n, const T* x, T* y, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const int grid = grid_for(n);
  if (a == Activation::Relu) return LK_LAUNCH(relu_fwd_kernel<T>, grid, kActivationThreads, 0, stream)(n, x, y);
  return LK_LAUNCH(sigmoid_fwd_kernel<T>, grid, kActivationThreads, 0, stream)(n, x, y);
}

template <typename T>
cudaError_t activation_bwd(Activation a, int64_t n, const T* dy, const T* y, T* dx, cudaStream_t stream,
                           bool accumulate) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const int grid = grid_for(n);
  if (a == Activation::Relu)
    return LK_LAUNCH(relu_bwd_kernel<T>, grid, kActivationThreads, 0, stream)(n, dy, y, dx, accumulate);
  return LK_LAUNCH(sigmoid_bwd_kernel<T>, grid, kActivationThreads, 0, stream)(n, dy, y, dx, accumulate);
}

#define LK_INST(T)                                                                                \
  template cudaError_t activation_fwd<T>(Activation, int64_t, const T*, T*, cudaStream_t);        \
  template cudaError_t activation_bwd<T>(Activation, int64_t, const T*, const T*, T*, cudaStream_t, bool);
LK_INSTANTIATE_STORAGE(LK_INST)
#undef LK_INST

LK_CUDA_NAMESPACE_END
