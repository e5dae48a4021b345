// Softmax over the channel dim of (N, C, HW): each pixel's C logits.
#pragma once

#include "kernels/common.h"

namespace lk::cpu {

template <typename T>
void softmax_fwd(i64 n, i64 c, i64 hw, const T* x, T* y);
// dx += y * (dy - sum_c dy * y)
template <typename T>
void softmax_bwd(i64 n, i64 c, i64 hw, const T* dy, const T* y, T* dx, bool accumulate = true);

}  // namespace lk::cpu
