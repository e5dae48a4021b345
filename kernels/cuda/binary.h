// Broadcasting binary ops on CUDA, the device twins of kernels/binary.h, for
// every storage type T (float, bf16, f16: kernels/half.h; arithmetic and sums
// in float):
// broadcasting add/multiply over shapes padded to 4 dims (each input dim equals
// the output's or is 1), their backward, and the vector helpers fill, axpy and
// scale. Same semantics and argument order as the CPU kernels, device pointers.
//
// binary_bwd reduces over the dims along which `self` was broadcast without
// atomics: every destination element is owned by one thread (reduction over
// outer dims, coalesced across threads) or by one warp / one block (reduction
// over the innermost dims, a fixed shuffle tree), so the result is
// deterministic: the same inputs give the same bits on every run.
//
// Launchers run asynchronously on `stream` and return the launch's
// cudaGetLastError(); cudaSuccess without a launch when there is nothing to
// do, cudaErrorInvalidValue (nothing launched) for inconsistent shapes or n < 0.
#pragma once

#include <cstdint>

#include "kernels/binary.h"
#include "kernels/cuda/runtime_api.h"
#include "kernels/half.h"

LK_CUDA_NAMESPACE_BEGIN

// y = a (+|*) b with broadcasting. y may alias an input of the output's shape.
template <typename T>
cudaError_t binary_fwd(BinaryOp op, const Dims4& out, const T* a, const Dims4& sa, const T* b, const Dims4& sb, T* y,
                       cudaStream_t stream = nullptr);

// d_self += reduce_to(s_self, dy * (op == Mul ? other : 1)) (= without
// accumulate). `other` is read only for Mul (it may be null for Add).
template <typename T>
cudaError_t binary_bwd(BinaryOp op, const Dims4& out, const T* dy, const Dims4& s_self, const T* other,
                       const Dims4& s_other, T* d_self, cudaStream_t stream = nullptr, bool accumulate = true);

// y[i] = value (double: small state arrays such as the optimiser's, engine/optim.h)
template <typename T>
cudaError_t fill(int64_t n, float value, T* y, cudaStream_t stream = nullptr);
cudaError_t fill(int64_t n, double value, double* y, cudaStream_t stream = nullptr);
// y += a * x (y = a * x without accumulate)
template <typename T>
cudaError_t axpy(int64_t n, float a, const T* x, T* y, cudaStream_t stream = nullptr, bool accumulate = true);
// y *= a (in place)
template <typename T>
cudaError_t scale(int64_t n, float a, T* y, cudaStream_t stream = nullptr);
// dst += src (= without accumulate), converting between storage types
// (S, D in {float, bf16, f16}; rounded once, to nearest even).
template <typename S, typename D>
cudaError_t cast(int64_t n, const S* src, D* dst, cudaStream_t stream = nullptr, bool accumulate = false);

// Launch shape: kBinaryThreads per block; grid-stride loops over at most
// kElementwiseMaxBlocks blocks.
inline constexpr int kBinaryThreads = 256;
inline constexpr int kElementwiseMaxBlocks = 1024;

LK_CUDA_NAMESPACE_END
