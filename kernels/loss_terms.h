// The deep-supervision loss's terms (model/loss.h): one output's weighted
// cross-entropy and adaptive Tversky on its logits as one op, and the
// weighted sum of the terms.
//
// ce_tversky: loss = CE_w(logits) + Tversky(softmax(logits)), exactly the
// composition of kernels/cross_entropy.h and kernels/tversky.h (these CPU
// kernels ARE that composition; the CUDA twin, kernels/cuda/loss_terms.h,
// computes it in one pass over the pixels and is tested against them).
//   logits (N, C, HW)  target (N, HW) int32 in [0, C)  weight (C)
//   stats (kCeTverskyStats(C)): TP, FP, FN, alpha per class (as tversky's
//   stats), then wsum = sum_i w[t_i], the CE and the Tversky loss (logging).
// The backward recomputes the softmax from the logits (nothing saved).
//
// weighted_sum: y = sum_i w_i x_i over k same-size inputs; its backward
// writes (or adds) w_i dy into each input's gradient.
#pragma once

#include <cstdint>

#include "kernels/common.h"
#include "kernels/params.h"

namespace lk::cpu {

inline constexpr i64 ce_tversky_stats(i64 c) { return 4 * c + 3; }
// The fused op's class limit (the CUDA kernels keep a pixel's classes in registers).
inline constexpr i64 kCeTverskyMaxClasses = 8;

// Writes loss[0] and stats; returns the first out-of-range label index, or -1.
template <typename T>
i64 ce_tversky_fwd(const TverskyParams& tp, i64 n, i64 c, i64 hw, const T* logits, const int32_t* target,
                   const T* weight, T* loss, T* stats);
// dlogits += dloss[0] * d(loss)/d(logits) (= without accumulate).
template <typename T>
void ce_tversky_bwd(const TverskyParams& tp, i64 n, i64 c, i64 hw, const T* dloss, const T* logits,
                    const int32_t* target, const T* weight, const T* stats, T* dlogits, bool accumulate = true);

template <typename T>
void weighted_sum_fwd(i64 k, const T* const* xs, const double* w, i64 n, T* y);
// dxs[i] += w_i * dy (= where accumulate[i] is false); null dxs[i]: skipped.
template <typename T>
void weighted_sum_bwd(i64 k, const T* dy, const double* w, i64 n, T* const* dxs, const bool* accumulate);

}  // namespace lk::cpu
