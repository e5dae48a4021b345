#include "kernels/lka_gate.h"

#include <cmath>
#include <vector>

#include "kernels/batch_norm.h"

namespace lk::cpu {

namespace {
template <typename T>
T sigmoid(T z) {
  const T e = std::exp(-std::abs(z));
  return z >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}
}  // namespace

template <typename T>
void lka_gate_fwd(i64 n, i64 c, i64 hw, const T* x, const T* f, const T* gamma, const T* beta, T* running_mean,
                  T* running_var, bool training, double momentum, double eps, T* y, T* save_mean, T* save_invstd) {
  // z = BN(f) into y, then y = x * sigmoid(z) in place.
  batch_norm_fwd<T>(n, c, hw, f, gamma, beta, running_mean, running_var, training, momentum, eps, y, save_mean,
                    save_invstd);
#pragma omp parallel for
  for (i64 i = 0; i < n * c * hw; ++i) y[i] = x[i] * sigmoid(y[i]);
}

template <typename T>
void lka_gate_bwd(i64 n, i64 c, i64 hw, const T* dy, const T* x, const T* f, const T* gamma, const T* beta,
                  const T* save_mean, const T* save_invstd, bool training, T* dx, T* df, T* dgamma, T* dbeta,
                  bool acc_dx, bool acc_df, bool acc_dgamma, bool acc_dbeta) {
  // dz = dy * x * A (1 - A) with A recomputed; then the batch-norm backward.
  std::vector<T> dz(static_cast<size_t>(n * c * hw));
#pragma omp parallel for collapse(2)
  for (i64 i = 0; i < n; ++i)
    for (i64 ch = 0; ch < c; ++ch) {
      const T a = static_cast<T>(gamma[ch] * save_invstd[ch]);
      const T b = static_cast<T>(beta[ch] - save_mean[ch] * gamma[ch] * save_invstd[ch]);
      for (i64 k = 0; k < hw; ++k) {
        const i64 idx = (i * c + ch) * hw + k;
        const T s = sigmoid(a * f[idx] + b);
        if (dx) put_grad(dx[idx], dy[idx] * s, acc_dx);
        dz[static_cast<size_t>(idx)] = dy[idx] * x[idx] * s * (T(1) - s);
      }
    }
  batch_norm_bwd<T>(n, c, hw, dz.data(), f, gamma, save_mean, save_invstd, training, df, dgamma, dbeta, acc_df,
                    acc_dgamma, acc_dbeta);
}

#define LK_INST(T)                                                                                            \
  template void lka_gate_fwd<T>(i64, i64, i64, const T*, const T*, const T*, const T*, T*, T*, bool, double,  \
                                double, T*, T*, T*);                                                          \
  template void lka_gate_bwd<T>(i64, i64, i64, const T*, const T*, const T*, const T*, const T*, const T*,    \
                                const T*, bool, T*, T*, T*, T*, bool, bool, bool, bool);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
