// Pointwise activations. Backward passes use the saved output:
// relu' = (y > 0), sigmoid' = y * (1 - y).
#pragma once

#include "kernels/common.h"
#include "kernels/params.h"

namespace lk::cpu {

template <typename T>
void activation_fwd(Activation a, i64 n, const T* x, T* y);
// dx += dy * f'(x) expressed through y
template <typename T>
void activation_bwd(Activation a, i64 n, const T* dy, const T* y, T* dx, bool accumulate = true);

}  // namespace lk::cpu
