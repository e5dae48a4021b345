// The weighted cross-entropy loss on CUDA (float), fused with the softmax it
// starts from, and the softmax over channels itself (they share the per-pixel
// code): the device twins of kernels/cross_entropy.h and kernels/softmax.h,
// same semantics and argument order, device pointers.
//   logits, probs (N, C, HW)   target (N, HW) int32 in [0, C)   weight (C)
//   loss = sum_i w[t_i] * -log softmax(z_i)[t_i] / sum_i w[t_i]   (mean over summed weights)
//
// Reductions are deterministic (bitwise reproducible run to run): every block
// writes its partial sums (double) to the caller's workspace, and a one-block
// final pass adds them in a fixed order; no floating-point atomics.
//
// Graph capture: cross_entropy_fwd writes the loss, the weight sum and a bad
// label to DEVICE memory and cross_entropy_bwd reads dloss and wsum from DEVICE
// memory, so a whole training step can be captured and replayed; nothing
// synchronises with the host (cross_entropy_fwd_checked excepted).
//
// Launchers return the (first failing) launch's cudaGetLastError(),
// cudaErrorInvalidValue (nothing launched) for negative sizes, a too small
// workspace or a missing pointer, cudaSuccess with nothing launched when there
// is no pixel. Backward passes ADD into their gradient outputs, or overwrite
// them (accumulate false: beta = 0).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

// Where the loss kernels (this file, tversky.h) report a label outside
// [0, C) without a round trip to the host: a record in device memory that
// keeps the FIRST bad label seen since its owner cleared it (every byte 0xFF:
// index -1), so the kernels never wait and the owner looks when it reads
// results from the device anyway (engine/cuda/backend_cuda.cpp).
struct LabelError {
  int64_t index;  // flat (n*hw) index into the target of the call that saw it; -1: none
  int64_t label;  // the label found there
};

// y = softmax over the c channels of each pixel of x
cudaError_t softmax_fwd(int64_t n, int64_t c, int64_t hw, const float* x, float* y, cudaStream_t stream = nullptr);
// dx += y * (dy - sum_c dy * y)
cudaError_t softmax_bwd(int64_t n, int64_t c, int64_t hw, const float* dy, const float* y, float* dx,
                        cudaStream_t stream = nullptr, bool accumulate = true);

// Bytes of workspace cross_entropy_fwd needs (a function of n and hw only).
size_t cross_entropy_workspace_bytes(int64_t n, int64_t hw);

// Writes probs = softmax(logits), loss[0] and wsum[0] = sum_i w[t_i]. With an
// out-of-range label loss[0] and wsum[0] are NaN (probs are still written,
// the bad pixels contribute nothing) and, if `error` records none yet, it
// receives the first (flat n*hw) bad index and its label. weight may be null
// (all weights 1), error too (not reported). All are device pointers.
cudaError_t cross_entropy_fwd(int64_t n, int64_t c, int64_t hw, const float* logits, const int32_t* target,
                           const float* weight, float* probs, float* loss, float* wsum, LabelError* error,
                           void* workspace, size_t workspace_bytes, cudaStream_t stream = nullptr);

// What cross_entropy_fwd_checked returns for an out-of-range label (no kernel
// faulted: the context stays usable, unlike a real device-side assert).
inline constexpr cudaError_t kErrorBadLabel = cudaErrorAssert;

// cross_entropy_fwd, then reads the bad label index back (synchronises `stream`;
// not for graph capture): returns kErrorBadLabel and stores the first bad
// index in *first_bad (host pointer, may be null; -1 when all are valid).
cudaError_t cross_entropy_fwd_checked(int64_t n, int64_t c, int64_t hw, const float* logits, const int32_t* target,
                                   const float* weight, float* probs, float* loss, float* wsum, int64_t* first_bad,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream = nullptr);

// dlogits += dloss[0] * w[t_i] * (probs_i - onehot(t_i)) / wsum[0], dloss and
// wsum device scalars (pixels with an out-of-range label contribute nothing).
cudaError_t cross_entropy_bwd(int64_t n, int64_t c, int64_t hw, const float* dloss, const float* probs,
                           const int32_t* target, const float* weight, const float* wsum, float* dlogits,
                           cudaStream_t stream = nullptr, bool accumulate = true);

// Launch shape: kSoftmaxThreads threads per block, one pixel per thread in a
// grid-stride loop over at most kSoftmaxMaxBlocksX blocks per image (grid.y:
// images, at most 65535, looping beyond).
inline constexpr int kSoftmaxThreads = 256;
inline constexpr int kSoftmaxMaxBlocksX = 1024;

LK_CUDA_NAMESPACE_END
