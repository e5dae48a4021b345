// Adaptive Tversky loss on CUDA (float): the device twin of kernels/tversky.h
// (same TverskyParams, same stats layout [TP, FP, FN, alpha] x C, same
// formulas), device pointers.
//   probs (N, C, HW)   target (N, HW) int32 in [0, C)   stats (4*C)   loss (1)
//
// The soft counts are a deterministic two-level reduction: one block per
// (image, class, pixel chunk) writes its partial (double) to the workspace,
// then one block adds them per class over images and chunks in a fixed order
// and computes alpha, the stats and the loss. No floating-point atomics: the
// loss and its gradient are bitwise reproducible run to run.
//
// Graph capture: loss, stats and a bad label (LabelError, cross_entropy.h) are
// written to DEVICE memory by tversky_fwd, and tversky_bwd reads dloss and stats from DEVICE
// memory; nothing synchronises with the host (tversky_fwd_checked excepted).
// Launchers return the (first failing) launch's cudaGetLastError(), or
// cudaErrorInvalidValue (nothing launched) for bad sizes, a missing pointer or
// a too small / misaligned (8 bytes) workspace.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/runtime_api.h"
#include "kernels/cuda/cross_entropy.h"  // LabelError, kErrorBadLabel
#include "kernels/tversky.h"

LK_CUDA_NAMESPACE_BEGIN

// Bytes of workspace tversky_fwd needs.
size_t tversky_workspace_bytes(int64_t n, int64_t c, int64_t hw);

// Writes loss[0] and stats[0..4C). With an out-of-range label the loss is NaN
// (labels out of range count as "not this class" in the stats) and, if
// `error` (device, may be null) records none yet, it receives the first
// (flat n*hw) bad index and its label.
cudaError_t tversky_fwd(const TverskyParams& tp, int64_t n, int64_t c, int64_t hw, const float* probs,
                        const int32_t* target, float* loss, float* stats, LabelError* error, void* workspace,
                        size_t workspace_bytes, cudaStream_t stream = nullptr);

// tversky_fwd, then reads the bad label index back (synchronises `stream`; not
// for graph capture): kErrorBadLabel and *first_bad (host, may be null) set.
cudaError_t tversky_fwd_checked(const TverskyParams& tp, int64_t n, int64_t c, int64_t hw, const float* probs,
                                const int32_t* target, float* loss, float* stats, int64_t* first_bad,
                                void* workspace, size_t workspace_bytes, cudaStream_t stream = nullptr);

// dprobs += dloss[0] * dL/dprobs, per class g_y (pixels of the class) and g_n
// (the others) exactly as the CPU kernel computes them from stats, in both
// detach_alpha modes. dloss and stats are device pointers.
cudaError_t tversky_bwd(const TverskyParams& tp, int64_t n, int64_t c, int64_t hw, const float* dloss,
                        const int32_t* target, const float* stats, float* dprobs, cudaStream_t stream = nullptr,
                        bool accumulate = true);

// Launch shape: kTverskyThreads per block; a (image, class) plane is split
// into at most kTverskyMaxChunks chunks of about kTverskyThreads *
// kTverskyItems pixels (grid: planes x chunks).
inline constexpr int kTverskyThreads = 256;
inline constexpr int kTverskyItems = 8;
inline constexpr int kTverskyMaxChunks = 256;

LK_CUDA_NAMESPACE_END
