#include "kernels/lka_gate.h"

#include <vector>

#include "kernels/batch_norm.h"
#include "kernels/vec_math.h"

namespace lk::cpu {

template <typename T>
void lka_gate_fwd(i64 n, i64 c, i64 hw, const T* x, const T* f, const T* gamma, const T* beta, T* running_mean,
                  T* running_var, bool training, double momentum, double eps, T* y, T* save_mean, T* save_invstd) {
  // Per channel: the statistics of f, then y = x * sigmoid(a f + b) in one pass.
#pragma omp parallel for schedule(static)
  for (i64 ch = 0; ch < c; ++ch) {
    const double mean = batch_norm_channel_stats(n, c, hw, ch, f, running_mean, running_var, training, momentum, eps,
                                                 save_mean, save_invstd);
    const double invstd = save_invstd[ch];
    const T a = static_cast<T>(gamma[ch] * invstd), b = static_cast<T>(beta[ch] - mean * gamma[ch] * invstd);
    for (i64 i = 0; i < n; ++i) {
      const i64 o = (i * c + ch) * hw;
#pragma omp simd
      for (i64 k = 0; k < hw; ++k) y[o + k] = x[o + k] * sigmoid(a * f[o + k] + b);
    }
  }
}

template <typename T>
void lka_gate_bwd(i64 n, i64 c, i64 hw, const T* dy, const T* x, const T* f, const T* gamma, const T* beta,
                  const T* save_mean, const T* save_invstd, bool training, T* dx, T* df, T* dgamma, T* dbeta,
                  bool acc_dx, bool acc_df, bool acc_dgamma, bool acc_dbeta) {
  // dz = dy * x * A (1 - A) with A recomputed; then the batch-norm backward.
  // dz lives in a grow-only buffer (no allocation per call after the first).
  thread_local std::vector<T> dz_buf;
  if (dz_buf.size() < static_cast<size_t>(n * c * hw)) dz_buf.resize(static_cast<size_t>(n * c * hw));
  T* dz = dz_buf.data();
#pragma omp parallel for collapse(2) schedule(static)
  for (i64 i = 0; i < n; ++i)
    for (i64 ch = 0; ch < c; ++ch) {
      const T a = static_cast<T>(gamma[ch] * save_invstd[ch]);
      const T b = static_cast<T>(beta[ch] - save_mean[ch] * gamma[ch] * save_invstd[ch]);
      const i64 o = (i * c + ch) * hw;
      if (dx) {
#pragma omp simd
        for (i64 k = 0; k < hw; ++k) {
          const T s = sigmoid(a * f[o + k] + b);
          put_grad(dx[o + k], dy[o + k] * s, acc_dx);
          dz[o + k] = dy[o + k] * x[o + k] * s * (T(1) - s);
        }
      } else {
#pragma omp simd
        for (i64 k = 0; k < hw; ++k) {
          const T s = sigmoid(a * f[o + k] + b);
          dz[o + k] = dy[o + k] * x[o + k] * s * (T(1) - s);
        }
      }
    }
  batch_norm_bwd<T>(n, c, hw, dz, f, gamma, save_mean, save_invstd, training, df, dgamma, dbeta, acc_df,
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
