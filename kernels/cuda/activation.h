// CUDA activation kernels, the device twins of kernels/activation.h: same
// semantics, same argument order, device pointers, for every storage type T
// (float, bf16, f16: kernels/half.h; arithmetic in float). Backward passes
// ADD into dx (or overwrite it: accumulate false) and use the saved output y:
// relu' = (y > 0), sigmoid' = y (1 - y).
// Launchers return the launch's cudaGetLastError() (cudaSuccess for n == 0);
// they run asynchronously on `stream`.
#pragma once

#include <cstdint>

#include "kernels/activation.h"
#include "kernels/cuda/runtime_api.h"
#include "kernels/half.h"

LK_CUDA_NAMESPACE_BEGIN

template <typename T>
cudaError_t activation_fwd(Activation a, int64_t n, const T* x, T* y, cudaStream_t stream = nullptr);
// dx += dy * f'(x) expressed through y (= without accumulate)
template <typename T>
cudaError_t activation_bwd(Activation a, int64_t n, const T* dy, const T* y, T* dx, cudaStream_t stream = nullptr,
                           bool accumulate = true);

// Launch shape: kActivationThreads per block, grid-stride loops over at most
// kActivationMaxBlocks blocks.
inline constexpr int kActivationThreads = 256;
inline constexpr int kActivationMaxBlocks = 1024;

LK_CUDA_NAMESPACE_END
