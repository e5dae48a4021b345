// The LKA tail in one op: y = x * sigmoid(BN(f)), BN over (N, H*W) per
// channel with the conventions of kernels/batch_norm.h (training: batch
// statistics, running stats updated; evaluation: running stats).
//   x, f, y (N, C, HW)  gamma, beta, running_*, save_mean, save_invstd (C)
// The backward recomputes A = sigmoid(BN(f)) from f and the saved statistics
// and ADDS into dx (dy * A), df (through sigmoid and BN, batch-statistic terms
// included in training), dgamma and dbeta; each may be null.
// The CUDA twin (kernels/cuda/lka_gate.h) does the same in fused passes.
#pragma once

#include "kernels/common.h"

namespace lk::cpu {

template <typename T>
void lka_gate_fwd(i64 n, i64 c, i64 hw, const T* x, const T* f, const T* gamma, const T* beta, T* running_mean,
                  T* running_var, bool training, double momentum, double eps, T* y, T* save_mean, T* save_invstd);

template <typename T>
void lka_gate_bwd(i64 n, i64 c, i64 hw, const T* dy, const T* x, const T* f, const T* gamma, const T* beta,
                  const T* save_mean, const T* save_invstd, bool training, T* dx, T* df, T* dgamma, T* dbeta,
                  bool acc_dx = true, bool acc_df = true, bool acc_dgamma = true, bool acc_dbeta = true);

}  // namespace lk::cpu
