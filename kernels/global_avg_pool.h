// Global average pooling (the SE squeeze and the context branch):
//   x (N*C planes of HW) -> y (N*C)
#pragma once

#include "kernels/common.h"

namespace lk::cpu {

template <typename T>
void global_avg_pool_fwd(i64 planes, i64 hw, const T* x, T* y);
// dx += dy / HW, broadcast over each plane
template <typename T>
void global_avg_pool_bwd(i64 planes, i64 hw, const T* dy, T* dx, bool accumulate = true);

}  // namespace lk::cpu
