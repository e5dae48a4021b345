// Fully connected layer, PyTorch's nn.Linear: y = x @ w^T + b
//   x (N, IN)  w (OUT, IN)  b (OUT) or null  y (N, OUT)
#pragma once

#include "kernels/common.h"

namespace lk::cpu {

template <typename T>
void linear_fwd(i64 n, i64 in, i64 out, const T* x, const T* w, const T* b, T* y);
// dx += dy @ w, dw += dy^T @ x, db += sum_n dy (each may be null)
template <typename T>
void linear_bwd(i64 n, i64 in, i64 out, const T* dy, const T* x, const T* w, T* dx, T* dw, T* db,
                bool acc_dx = true, bool acc_dw = true, bool acc_db = true);

}  // namespace lk::cpu
