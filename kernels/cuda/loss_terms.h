// The deep-supervision loss's terms on CUDA (float), the device twins of
// kernels/loss_terms.h: one output's CE + adaptive Tversky on its logits in
// one pass, and the weighted sum of the terms.
//
// ce_tversky_fwd: two launches. A pixel pass (grid as cross_entropy_fwd's)
// computes each pixel's softmax once and accumulates, per block, the
// cross-entropy partial (sum w*(-log p), sum w, first bad label) and per class
// (TP part, sum of p, count); a one-block final pass (loss_reduce.cuh, the
// same code as the separate kernels' final passes) writes stats (TP, FP, FN,
// alpha per class, then wsum, CE, Tversky: 4C + 3 floats) and loss = CE +
// Tversky. ce_tversky_bwd: one launch, the softmax recomputed per pixel:
//   dlogits += dloss * (w[t]/wsum (p - onehot(t)) + p (g - sum_k g_k p_k)),
// g_k the Tversky gradient per class (g_y on the pixel's class, g_n on the
// others, as tversky_bwd). Deterministic; nothing read back by the host (a bad
// label goes to `error`, LabelError in cross_entropy.h). C up to
// kCeTverskyMaxClasses, otherwise cudaErrorInvalidValue (compose the separate
// kernels instead).
//
// weighted_sum_fwd / _bwd: y = sum_i w_i x_i over k <= kWeightedSumMax
// inputs of n floats, one launch; the backward writes (or adds) w_i dy into
// every input gradient in one launch.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/cross_entropy.h"  // LabelError
#include "kernels/cuda/runtime_api.h"
#include "kernels/loss_terms.h"
#include "kernels/params.h"

LK_CUDA_NAMESPACE_BEGIN

inline constexpr int kCeTverskyMaxClasses = static_cast<int>(cpu::kCeTverskyMaxClasses);
inline constexpr int kWeightedSumMax = 8;

size_t ce_tversky_workspace_bytes(int64_t n, int64_t c, int64_t hw);

cudaError_t ce_tversky_fwd(const TverskyParams& tp, int64_t n, int64_t c, int64_t hw, const float* logits,
                           const int32_t* target, const float* weight, float* loss, float* stats, LabelError* error,
                           void* workspace, size_t workspace_bytes, cudaStream_t stream = nullptr);

cudaError_t ce_tversky_bwd(const TverskyParams& tp, int64_t n, int64_t c, int64_t hw, const float* dloss,
                           const float* logits, const int32_t* target, const float* weight, const float* stats,
                           float* dlogits, cudaStream_t stream = nullptr, bool accumulate = true);

// y = sum_i w_i xs[i] (+ y with accumulate).
cudaError_t weighted_sum_fwd(int k, const float* const* xs, const double* w, int64_t n, float* y,
                             cudaStream_t stream = nullptr, bool accumulate = false);
// dxs[i] += w_i * dy (= where accumulate[i] is false); null dxs[i]: skipped.
cudaError_t weighted_sum_bwd(int k, const float* dy, const double* w, int64_t n, float* const* dxs,
                             const bool* accumulate, cudaStream_t stream = nullptr);

LK_CUDA_NAMESPACE_END
