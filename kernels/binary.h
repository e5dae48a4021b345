// Broadcasting add and multiply over tensors of rank <= 4, given as shapes
// padded to 4 dims. Each input dim equals the output dim or is 1, which covers
// the network's uses: SE scaling x(N,C,H,W) * s(N,C,1,1), attention gates
// x(N,C,H,W) * a(N,1,H,W), the context branch broadcast back with add.
// Also the plain vector helpers fill and axpy.
#pragma once

#include "kernels/common.h"
#include "kernels/params.h"

namespace lk::cpu {


template <typename T>
void binary_fwd(BinaryOp op, const Dims4& out, const T* a, const Dims4& sa, const T* b,
                const Dims4& sb, T* y);

// d_self += reduce_to(self's shape, dy * (op == Mul ? other : 1)) (or = without accumulate)
template <typename T>
void binary_bwd(BinaryOp op, const Dims4& out, const T* dy, const Dims4& s_self,
                const T* other, const Dims4& s_other, T* d_self, bool accumulate = true);

template <typename T>
void fill(i64 n, T value, T* y);
// y += a * x (or y = a * x without accumulate)
template <typename T>
void axpy(i64 n, T a, const T* x, T* y, bool accumulate = true);

}  // namespace lk::cpu
