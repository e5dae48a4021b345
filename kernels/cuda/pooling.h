// Pooling on CUDA (float, bf16, f16 storage; float arithmetic), the device twins of kernels/global_avg_pool.h and
// kernels/max_pool2d.h: same semantics and argument order, device pointers.
//
// Global average pooling: a warp per plane (a whole block per plane for
// large planes when there are few), a fixed shuffle tree: deterministic.
// Max pooling (square window and stride, no padding, floor mode) saves per
// output the int32 flat index (within its plane) of the winner: the first
// maximum in row-major window order, or the last NaN if the window has one
// (as the CPU kernel). Its backward routes dy through those indices, race-free
// without atomics: when windows do not overlap (stride >= k) one thread per
// output scatters into its own window; when they overlap (stride < k) one
// thread per input pixel gathers, in output order, the dy of the windows
// covering it whose saved index is that pixel (and, when dx is overwritten
// rather than added into, every pixel gathers). idx must come from
// max_pool2d_fwd with the same geometry (each index inside its own window).
//
// Launchers run asynchronously on `stream` and return the launch's
// cudaGetLastError(); cudaSuccess without a launch when there is nothing to
// do; cudaErrorInvalidValue (nothing launched) for negative sizes, an empty
// plane in global_avg_pool_fwd, and in max pooling k < 1, stride < 1, a
// window larger than the plane, or h*w > INT_MAX.
#pragma once

#include <cstdint>

#include "kernels/cuda/runtime_api.h"
#include "kernels/half.h"

LK_CUDA_NAMESPACE_BEGIN

// x (planes, hw) -> y (planes): the mean of each plane.
template <typename T>
cudaError_t global_avg_pool_fwd(int64_t planes, int64_t hw, const T* x, T* y, cudaStream_t stream = nullptr);
// dx += dy / hw, broadcast over each plane (= without accumulate).
template <typename T>
cudaError_t global_avg_pool_bwd(int64_t planes, int64_t hw, const T* dy, T* dx, cudaStream_t stream = nullptr,
                                bool accumulate = true);

// x (planes, h, w) -> y, idx (planes, oh, ow), oh = (h - k) / stride + 1.
template <typename T>
cudaError_t max_pool2d_fwd(int64_t planes, int64_t h, int64_t w, int64_t k, int64_t stride, const T* x, T* y,
                           int32_t* idx, cudaStream_t stream = nullptr);
// dx += scatter(dy) through idx (= without accumulate: 0 where no window picked).
template <typename T>
cudaError_t max_pool2d_bwd(int64_t planes, int64_t h, int64_t w, int64_t k, int64_t stride, const T* dy,
                           const int32_t* idx, T* dx, cudaStream_t stream = nullptr, bool accumulate = true);

inline constexpr int kPoolThreads = 256;

LK_CUDA_NAMESPACE_END
