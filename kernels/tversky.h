// Adaptive Tversky loss (SPEC.md, paper §3.4) on softmax probabilities, soft
// counts over the whole batch, all C classes:
//   TP_c = sum p*y   FP_c = sum p*(1-y)   FN_c = sum (1-p)*y
//   alpha_c = clamp(FP_c / (FP_c + FN_c), alpha_min, alpha_max)  (detached;
//             0.5 when FP_c + FN_c = 0), beta_c = 1 - alpha_c
//   loss = 1 - (1/C) sum_c TP_c / (TP_c + alpha_c FP_c + beta_c FN_c + eps)
//   probs (N, C, HW), target (N, HW) int32 in [0, C)
// stats (4*C) holds TP, FP, FN, alpha for the backward (and for logging).
#pragma once

#include <cstdint>

#include "kernels/common.h"
#include "kernels/params.h"

namespace lk::cpu {

// Returns the first out-of-range label index, or -1.
template <typename T>
i64 tversky_fwd(const TverskyParams& tp, i64 n, i64 c, i64 hw, const T* probs,
                const int32_t* target, T* loss, T* stats);
// The last step of tversky_fwd, from the soft counts of the whole batch
// (per class TP, FP, FN in double: c values each): alpha, the loss and the
// stats. Also used when the counts are summed over processes (engine/ops).
template <typename T>
void tversky_finish(const TverskyParams& tp, i64 c, const double* TP, const double* FP, const double* FN, T* loss,
                    T* stats);
// With alpha held fixed, d(TP/D)/dp = (y*D - TP*alpha) / D^2 since
// dD/dp = y + alpha(1-y) - beta*y = alpha. dprobs += dloss * (-1/C) * that.
// Without detaching, D also moves through alpha: dD/dalpha = FP - FN and,
// where the clamp is inactive, dalpha/dp = ((1-y) FN + y FP) / (FP + FN)^2.
template <typename T>
void tversky_bwd(const TverskyParams& tp, i64 n, i64 c, i64 hw, const T* dloss,
                 const int32_t* target, const T* stats, T* dprobs, bool accumulate = true);

}  // namespace lk::cpu
