// Channel concatenation (the decoder's skip connections). One input at a
// time: its (N, C_src, HW) block goes to channels [offset, offset + C_src) of
// the (N, C_dst, HW) output.
#pragma once

#include "kernels/common.h"

namespace lk::cpu {

template <typename T>
void concat_fwd(i64 n, i64 c_src, i64 c_dst, i64 offset, i64 hw, const T* src, T* dst);
// dsrc += the matching channel block of ddst
template <typename T>
void concat_bwd(i64 n, i64 c_src, i64 c_dst, i64 offset, i64 hw, const T* ddst, T* dsrc, bool accumulate = true);

}  // namespace lk::cpu
