#include "kernels/batch_norm.h"

#include <cmath>

namespace lk::cpu {

template <typename T>
void batch_norm_fwd(i64 n, i64 c, i64 hw, const T* x, const T* gamma, const T* beta,
                    T* running_mean, T* running_var, bool training, double momentum, double eps,
                    T* y, T* save_mean, T* save_invstd) {
  const i64 m = n * hw;
#pragma omp parallel for
  for (i64 ch = 0; ch < c; ++ch) {
    double mean, var;
    if (training) {
      double s = 0;  // two passes in double: the mean, then centred squares
      for (i64 i = 0; i < n; ++i) {
        const T* p = x + (i * c + ch) * hw;
        for (i64 k = 0; k < hw; ++k) s += p[k];
      }
      mean = s / static_cast<double>(m);
      double ss = 0;
      for (i64 i = 0; i < n; ++i) {
        const T* p = x + (i * c + ch) * hw;
        for (i64 k = 0; k < hw; ++k) {
          const double d = p[k] - mean;
          ss += d * d;
        }
      }
      var = ss / static_cast<double>(m);
      running_mean[ch] = static_cast<T>((1 - momentum) * running_mean[ch] + momentum * mean);
      running_var[ch] = static_cast<T>((1 - momentum) * running_var[ch] +
                                       momentum * var * static_cast<double>(m) / static_cast<double>(m - 1));
    } else {
      mean = running_mean[ch];
      var = running_var[ch];
    }
    const double invstd = 1.0 / std::sqrt(var + eps);
    save_mean[ch] = static_cast<T>(mean);
    save_invstd[ch] = static_cast<T>(invstd);
    const T a = static_cast<T>(gamma[ch] * invstd);
    const T b = static_cast<T>(beta[ch] - mean * gamma[ch] * invstd);
    for (i64 i = 0; i < n; ++i) {
      const T* p = x + (i * c + ch) * hw;
      T* q = y + (i * c + ch) * hw;
      for (i64 k = 0; k < hw; ++k) q[k] = a * p[k] + b;
    }
  }
}

template <typename T>
void batch_norm_bwd(i64 n, i64 c, i64 hw, const T* dy, const T* x, const T* gamma,
                    const T* save_mean, const T* save_invstd, bool training, T* dx, T* dgamma,
                    T* dbeta, bool acc_dx, bool acc_dgamma, bool acc_dbeta) {
  const double m = static_cast<double>(n * hw);
#pragma omp parallel for
  for (i64 ch = 0; ch < c; ++ch) {
    const double mean = save_mean[ch], invstd = save_invstd[ch];
    double sdy = 0, sdyx = 0;  // sum dy, sum dy * xhat
    for (i64 i = 0; i < n; ++i) {
      const T* g = dy + (i * c + ch) * hw;
      const T* p = x + (i * c + ch) * hw;
      for (i64 k = 0; k < hw; ++k) {
        sdy += g[k];
        sdyx += g[k] * (p[k] - mean) * invstd;
      }
    }
    if (dgamma) put_grad(dgamma[ch], static_cast<T>(sdyx), acc_dgamma);
    if (dbeta) put_grad(dbeta[ch], static_cast<T>(sdy), acc_dbeta);
    if (!dx) continue;
    const double scale = gamma[ch] * invstd;
    for (i64 i = 0; i < n; ++i) {
      const T* g = dy + (i * c + ch) * hw;
      const T* p = x + (i * c + ch) * hw;
      T* q = dx + (i * c + ch) * hw;
      if (training) {
        // dx = gamma*invstd * (dy - mean(dy) - xhat * mean(dy*xhat))
        const double a = sdy / m, b = sdyx / m;
        for (i64 k = 0; k < hw; ++k)
          put_grad(q[k], static_cast<T>(scale * (g[k] - a - (p[k] - mean) * invstd * b)), acc_dx);
      } else {
        for (i64 k = 0; k < hw; ++k) put_grad(q[k], static_cast<T>(scale * g[k]), acc_dx);
      }
    }
  }
}

#define LK_INST(T)                                                                             \
  template void batch_norm_fwd<T>(i64, i64, i64, const T*, const T*, const T*, T*, T*, bool,    \
                                  double, double, T*, T*, T*);                                  \
  template void batch_norm_bwd<T>(i64, i64, i64, const T*, const T*, const T*, const T*,        \
                                  const T*, bool, T*, T*, T*, bool, bool, bool);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
