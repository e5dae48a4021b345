// Channel concatenation on CUDA (float, bf16, f16), the device twin of kernels/concat.h
// (same semantics and argument order, device pointers): one input at a time,
// its (n, c_src, hw) block goes to channels [offset, offset + c_src) of the
// (n, c_dst, hw) output; the backward ADDS the matching slice of ddst into
// dsrc. One thread per element (four at a time with 16-byte loads and stores
// when hw % 4 == 0 and the pointers are 16-byte aligned), grid-stride.
//
// Launchers run asynchronously on `stream` and return the launch's
// cudaGetLastError(); cudaSuccess without a launch when there is nothing to
// copy; cudaErrorInvalidValue (nothing launched) for negative sizes or a slice
// outside the output (offset + c_src > c_dst).
#pragma once

#include <cstdint>

#include "kernels/cuda/runtime_api.h"
#include "kernels/half.h"

LK_CUDA_NAMESPACE_BEGIN

template <typename T>
cudaError_t concat_fwd(int64_t n, int64_t c_src, int64_t c_dst, int64_t offset, int64_t hw, const T* src, T* dst,
                       cudaStream_t stream = nullptr);
// dsrc += the matching channel block of ddst (= without accumulate; 16-bit:
// the sum in float, rounded once)
template <typename T>
cudaError_t concat_bwd(int64_t n, int64_t c_src, int64_t c_dst, int64_t offset, int64_t hw, const T* ddst, T* dsrc,
                       cudaStream_t stream = nullptr, bool accumulate = true);

inline constexpr int kConcatThreads = 256;

LK_CUDA_NAMESPACE_END
