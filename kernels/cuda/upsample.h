// Upsampling by an integer factor on CUDA (float, bf16, f16 storage; float arithmetic), the device twin of
// kernels/upsample.h (PyTorch's F.interpolate: nearest, and bilinear with
// align_corners=False): same semantics and argument order, device pointers.
//   x (planes, h, w) -> y (planes, h*f, w*f)
//
// The bilinear source coordinate (dst + 0.5) / f - 0.5 is computed exactly
// in integers: 2f * src = 2 dst + 1 - f, so the taps i0, i1 and the weight
// l1 = rem / 2f match the CPU kernel's double arithmetic.
//
// The backward is a gather: one thread per input pixel sums, over the outputs
// whose taps touch it (f*f for nearest, about 2f*2f for bilinear), weight *
// dy, and adds the sum to dx. Race-free and deterministic without atomics.
//
// Launchers run asynchronously on `stream` and return the launch's
// cudaGetLastError(); cudaSuccess without a launch when there is nothing to
// do; cudaErrorInvalidValue (nothing launched) for negative sizes, f < 1, or
// an output plane of more than INT_MAX elements.
#pragma once

#include <cstdint>

#include "kernels/cuda/runtime_api.h"
#include "kernels/half.h"
#include "kernels/upsample.h"

LK_CUDA_NAMESPACE_BEGIN

template <typename T>
cudaError_t upsample_fwd(UpsampleMode mode, int64_t planes, int64_t h, int64_t w, int64_t f, const T* x, T* y,
                         cudaStream_t stream = nullptr);
// dx += adjoint(dy) (= without accumulate)
template <typename T>
cudaError_t upsample_bwd(UpsampleMode mode, int64_t planes, int64_t h, int64_t w, int64_t f, const T* dy, T* dx,
                         cudaStream_t stream = nullptr, bool accumulate = true);

inline constexpr int kUpsampleThreads = 256;

LK_CUDA_NAMESPACE_END
