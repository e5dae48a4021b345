// Max pooling, square window and stride, no padding, floor mode:
//   x (planes, H, W) -> y (planes, OH, OW), OH = (H - k) / stride + 1
// The forward saves, per output, the flat index (within its plane) of the
// winner; the backward routes the gradient there. Ties go to the first.
#pragma once

#include <cstdint>

#include "kernels/common.h"

namespace lk::cpu {

template <typename T>
void max_pool2d_fwd(i64 planes, i64 h, i64 w, i64 k, i64 stride, const T* x, T* y, int32_t* idx);
// dx += scatter(dy) through idx
template <typename T>
void max_pool2d_bwd(i64 planes, i64 h, i64 w, i64 k, i64 stride, const T* dy, const int32_t* idx, T* dx,
                    bool accumulate = true);

}  // namespace lk::cpu
