#include "kernels/batch_norm_relu.h"

#include <cmath>

namespace lk::cpu {

namespace {

// z = scale * x + shift from the saved (T-rounded) statistics.
template <typename T>
struct Affine {
  T scale, shift;
};
template <typename T>
Affine<T> affine_of(T gamma, T beta, T mean, T invstd) {
  const double gi = static_cast<double>(gamma) * static_cast<double>(invstd);
  return {static_cast<T>(gi), static_cast<T>(static_cast<double>(beta) - static_cast<double>(mean) * gi)};
}

template <typename T>
inline T relu(T v) {
  return v > T(0) ? v : T(0);
}

}  // namespace

template <typename T>
void batch_norm_relu_fwd(i64 n, i64 c, i64 hw, const T* x, const T* gamma, const T* beta, T* running_mean,
                         T* running_var, bool training, double momentum, double eps, const T* r, BnResidual mode, T* y,
                         T* save_mean, T* save_invstd) {
  const i64 m = n * hw;
#pragma omp parallel for
  for (i64 ch = 0; ch < c; ++ch) {
    double mean, var;
    if (training) {
      double s = 0, ss = 0;  // the mean, then centred squares, in double
      for (i64 i = 0; i < n; ++i) {
        const T* p = x + (i * c + ch) * hw;
        for (i64 k = 0; k < hw; ++k) s += p[k];
      }
      mean = s / static_cast<double>(m);
      for (i64 i = 0; i < n; ++i) {
        const T* p = x + (i * c + ch) * hw;
        for (i64 k = 0; k < hw; ++k) ss += (p[k] - mean) * (p[k] - mean);
      }
      var = ss / static_cast<double>(m);
      running_mean[ch] = static_cast<T>((1 - momentum) * running_mean[ch] + momentum * mean);
      running_var[ch] = static_cast<T>((1 - momentum) * running_var[ch] +
                                       momentum * var * static_cast<double>(m) / static_cast<double>(m - 1));
    } else {
      mean = running_mean[ch];
      var = running_var[ch];
    }
    save_mean[ch] = static_cast<T>(mean);
    save_invstd[ch] = static_cast<T>(1.0 / std::sqrt(var + eps));
    const Affine<T> a = affine_of(gamma[ch], beta[ch], save_mean[ch], save_invstd[ch]);
    for (i64 i = 0; i < n; ++i) {
      const i64 off = (i * c + ch) * hw;
      const T* p = x + off;
      T* q = y + off;
      switch (mode) {
        case BnResidual::None:
          for (i64 k = 0; k < hw; ++k) q[k] = relu(a.scale * p[k] + a.shift);
          break;
        case BnResidual::AfterRelu:
          for (i64 k = 0; k < hw; ++k) q[k] = relu(a.scale * p[k] + a.shift) + r[off + k];
          break;
        case BnResidual::BeforeRelu:
          for (i64 k = 0; k < hw; ++k) q[k] = relu(a.scale * p[k] + a.shift + r[off + k]);
          break;
      }
    }
  }
}

template <typename T>
void batch_norm_relu_bwd(i64 n, i64 c, i64 hw, BnResidual mode, const T* dy, const T* x, const T* y, const T* gamma,
                         const T* beta, const T* save_mean, const T* save_invstd, bool training, T* dx, T* dr,
                         T* dgamma, T* dbeta, bool acc_dx, bool acc_dr, bool acc_dgamma, bool acc_dbeta) {
  const double m = static_cast<double>(n * hw);
#pragma omp parallel for
  for (i64 ch = 0; ch < c; ++ch) {
    const Affine<T> a = affine_of(gamma[ch], beta[ch], save_mean[ch], save_invstd[ch]);
    const double mean = save_mean[ch], invstd = save_invstd[ch];
    // g = dy * relu'(.)
    auto grad = [&](i64 j) -> T {
      const bool on = mode == BnResidual::BeforeRelu ? y[j] > T(0) : a.scale * x[j] + a.shift > T(0);
      return on ? dy[j] : T(0);
    };
    double sg = 0, sgx = 0;  // sum g, sum g * xhat
    for (i64 i = 0; i < n; ++i) {
      const i64 off = (i * c + ch) * hw;
      for (i64 k = 0; k < hw; ++k) {
        const T g = grad(off + k);
        sg += g;
        sgx += g * (x[off + k] - mean) * invstd;
        if (dr) {
          const T v = mode == BnResidual::AfterRelu ? dy[off + k] : g;
          dr[off + k] = acc_dr ? dr[off + k] + v : v;
        }
      }
    }
    if (dgamma) dgamma[ch] = static_cast<T>(sgx) + (acc_dgamma ? dgamma[ch] : T(0));
    if (dbeta) dbeta[ch] = static_cast<T>(sg) + (acc_dbeta ? dbeta[ch] : T(0));
    if (!dx) continue;
    const double scale = gamma[ch] * invstd;
    const double ka = training ? sg / m : 0.0, kb = training ? sgx / m : 0.0;
    for (i64 i = 0; i < n; ++i) {
      const i64 off = (i * c + ch) * hw;
      for (i64 k = 0; k < hw; ++k) {
        const T v = static_cast<T>(scale * (grad(off + k) - ka - (x[off + k] - mean) * invstd * kb));
        dx[off + k] = acc_dx ? dx[off + k] + v : v;
      }
    }
  }
}

#define LK_INST(T)                                                                                                 \
  template void batch_norm_relu_fwd<T>(i64, i64, i64, const T*, const T*, const T*, T*, T*, bool, double, double,   \
                                       const T*, BnResidual, T*, T*, T*);                                          \
  template void batch_norm_relu_bwd<T>(i64, i64, i64, BnResidual, const T*, const T*, const T*, const T*, const T*, \
                                       const T*, const T*, bool, T*, T*, T*, T*, bool, bool, bool, bool);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
