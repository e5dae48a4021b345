// Batch norm fused with ReLU and a residual add (BnResidual, kernels/params.h):
//   None        y = relu(z)
//   AfterRelu   y = relu(z) + r
//   BeforeRelu  y = relu(z + r)
// z = BN(x) as kernels/batch_norm.h (same statistics, running-statistics
// update and saved mean / invstd), computed as z = scale * x + shift with
// scale and shift taken (in double) from the statistics rounded to T as they
// are saved: the backward recomputes z from the saved values and gets the
// forward's bits, so it needs neither z nor the ReLU's output stored.
// One pass over x for the statistics, one to write y: relu and the add cost
// nothing extra, and the backward reads dy and x (and y for BeforeRelu) once
// per pass instead of going through a ReLU gradient, an add's two gradients
// and the batch norm's.
//   x, y, r, dy, dx, dr (N, C, HW)   gamma, beta, running_*, save_* (C)
#pragma once

#include "kernels/common.h"
#include "kernels/params.h"

namespace lk::cpu {

// r: the residual (null for None).
template <typename T>
void batch_norm_relu_fwd(i64 n, i64 c, i64 hw, const T* x, const T* gamma, const T* beta, T* running_mean,
                         T* running_var, bool training, double momentum, double eps, const T* r, BnResidual mode, T* y,
                         T* save_mean, T* save_invstd);

// With m = relu'(.) (z > 0, recomputed from x; for BeforeRelu y > 0) and
// g = dy * m:
//   dr += dy (AfterRelu) or g (BeforeRelu)
//   dgamma += sum g * xhat, dbeta += sum g
//   dx += gamma*invstd * (g - mean(g) - xhat * mean(g * xhat))   (training)
//         gamma*invstd * g                                       (evaluation)
// Each of dx, dr, dgamma, dbeta may be null; y is read for BeforeRelu only;
// acc_* false: overwrite instead of adding.
template <typename T>
void batch_norm_relu_bwd(i64 n, i64 c, i64 hw, BnResidual mode, const T* dy, const T* x, const T* y, const T* gamma,
                         const T* beta, const T* save_mean, const T* save_invstd, bool training, T* dx, T* dr,
                         T* dgamma, T* dbeta, bool acc_dx = true, bool acc_dr = true, bool acc_dgamma = true,
                         bool acc_dbeta = true);

}  // namespace lk::cpu
