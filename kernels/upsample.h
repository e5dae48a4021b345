// Upsampling by an integer factor f, PyTorch's F.interpolate semantics:
//   nearest:  src = floor(dst / f)
//   bilinear: align_corners=False, src = (dst + 0.5) / f - 0.5 clamped at 0,
//             neighbours i0 = floor(src), i1 = min(i0 + 1, size - 1)
//   x (planes, H, W) -> y (planes, H*f, W*f)
#pragma once

#include "kernels/common.h"
#include "kernels/params.h"

namespace lk::cpu {

template <typename T>
void upsample_fwd(UpsampleMode mode, i64 planes, i64 h, i64 w, i64 f, const T* x, T* y);
// dx += adjoint(dy)
template <typename T>
void upsample_bwd(UpsampleMode mode, i64 planes, i64 h, i64 w, i64 f, const T* dy, T* dx, bool accumulate = true);

}  // namespace lk::cpu
