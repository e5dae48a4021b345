#include "kernels/batch_norm_relu.h"

#include <cmath>
#include <vector>

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
#pragma omp parallel for schedule(static)
  for (i64 ch = 0; ch < c; ++ch) {
    double mean, var;
    if (training) {
      double s = 0, ss = 0;  // the mean, then centred squares, in double
      for (i64 i = 0; i < n; ++i) {
        const T* p = x + (i * c + ch) * hw;
#pragma omp simd reduction(+ : s)
        for (i64 k = 0; k < hw; ++k) s += p[k];
      }
      mean = s / static_cast<double>(m);
      for (i64 i = 0; i < n; ++i) {
        const T* p = x + (i * c + ch) * hw;
#pragma omp simd reduction(+ : ss)
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
#pragma omp simd
          for (i64 k = 0; k < hw; ++k) q[k] = relu(a.scale * p[k] + a.shift);
          break;
        case BnResidual::AfterRelu:
#pragma omp simd
          for (i64 k = 0; k < hw; ++k) q[k] = relu(a.scale * p[k] + a.shift) + r[off + k];
          break;
        case BnResidual::BeforeRelu:
#pragma omp simd
          for (i64 k = 0; k < hw; ++k) q[k] = relu(a.scale * p[k] + a.shift + r[off + k]);
          break;
      }
    }
  }
}

namespace {

// dy * relu'(z) for one element: z > 0 read from y (BeforeRelu: y = relu(z))
// or recomputed from x (z = scale * x + shift).
template <bool kFromY, typename T>
inline T gated(T d, T xv, const T* q, i64 k, Affine<T> a) {
  if constexpr (kFromY)
    return q[k] > T(0) ? d : T(0);
  else
    return a.scale * xv + a.shift > T(0) ? d : T(0);
}

// One channel of the backward, in the vectorised shape of batch_norm_bwd:
// the sums (and dr) in one pass, then dx = A g + B (x - mean) + C.
template <bool kFromY, typename T>
void bn_relu_bwd_channel(i64 n, i64 c, i64 hw, i64 ch, BnResidual mode, const T* dy, const T* x, const T* y,
                         const T* gamma, const T* beta, const T* save_mean, const T* save_invstd, bool training,
                         T* dx, T* dr, T* dgamma, T* dbeta, bool acc_dx, bool acc_dr, bool acc_dgamma,
                         bool acc_dbeta) {
  const Affine<T> a = affine_of(gamma[ch], beta[ch], save_mean[ch], save_invstd[ch]);
  const double mean = save_mean[ch], invstd = save_invstd[ch];
  double sg = 0, sgc = 0;  // sum g, sum g * (x - mean)
  // g of one row first: GCC does not vectorise the select and the double
  // sums in one loop (it ran scalar, 10-25x slower than batch_norm_bwd).
  thread_local std::vector<T> row;
  row.resize(static_cast<size_t>(hw));
  T* gr = row.data();
  for (i64 i = 0; i < n; ++i) {
    const i64 off = (i * c + ch) * hw;
    const T *d = dy + off, *p = x + off, *q = kFromY ? y + off : nullptr;
#pragma omp simd
    for (i64 k = 0; k < hw; ++k) gr[k] = gated<kFromY>(d[k], p[k], q, k, a);
#pragma omp simd reduction(+ : sg, sgc)
    for (i64 k = 0; k < hw; ++k) {
      sg += gr[k];
      sgc += static_cast<double>(gr[k]) * (static_cast<double>(p[k]) - mean);
    }
    if (!dr) continue;
    T* r = dr + off;
    if (mode == BnResidual::AfterRelu) {  // the residual skipped the ReLU: dr = dy
      if (acc_dr) {
#pragma omp simd
        for (i64 k = 0; k < hw; ++k) r[k] += d[k];
      } else {
#pragma omp simd
        for (i64 k = 0; k < hw; ++k) r[k] = d[k];
      }
    } else if (acc_dr) {
#pragma omp simd
      for (i64 k = 0; k < hw; ++k) r[k] += gr[k];
    } else {
#pragma omp simd
      for (i64 k = 0; k < hw; ++k) r[k] = gr[k];
    }
  }
  const double sgx = sgc * invstd;  // sum g * xhat
  if (dgamma) dgamma[ch] = static_cast<T>(sgx) + (acc_dgamma ? dgamma[ch] : T(0));
  if (dbeta) dbeta[ch] = static_cast<T>(sg) + (acc_dbeta ? dbeta[ch] : T(0));
  if (!dx) return;
  const double m = static_cast<double>(n * hw), scale = gamma[ch] * invstd;
  const T A = static_cast<T>(scale), B = static_cast<T>(training ? -scale * invstd * sgx / m : 0.0),
          C = static_cast<T>(training ? -scale * sg / m : 0.0), mu = static_cast<T>(mean);
  for (i64 i = 0; i < n; ++i) {
    const i64 off = (i * c + ch) * hw;
    const T *d = dy + off, *p = x + off, *q = kFromY ? y + off : nullptr;
    T* o = dx + off;
    if (acc_dx) {
#pragma omp simd
      for (i64 k = 0; k < hw; ++k) o[k] += A * gated<kFromY>(d[k], p[k], q, k, a) + B * (p[k] - mu) + C;
    } else {
#pragma omp simd
      for (i64 k = 0; k < hw; ++k) o[k] = A * gated<kFromY>(d[k], p[k], q, k, a) + B * (p[k] - mu) + C;
    }
  }
}

}  // namespace

template <typename T>
void batch_norm_relu_bwd(i64 n, i64 c, i64 hw, BnResidual mode, const T* dy, const T* x, const T* y, const T* gamma,
                         const T* beta, const T* save_mean, const T* save_invstd, bool training, T* dx, T* dr,
                         T* dgamma, T* dbeta, bool acc_dx, bool acc_dr, bool acc_dgamma, bool acc_dbeta) {
  const bool from_y = mode == BnResidual::BeforeRelu;
#pragma omp parallel for schedule(static)
  for (i64 ch = 0; ch < c; ++ch) {
    if (from_y)
      bn_relu_bwd_channel<true>(n, c, hw, ch, mode, dy, x, y, gamma, beta, save_mean, save_invstd, training, dx, dr,
                                dgamma, dbeta, acc_dx, acc_dr, acc_dgamma, acc_dbeta);
    else
      bn_relu_bwd_channel<false>(n, c, hw, ch, mode, dy, x, y, gamma, beta, save_mean, save_invstd, training, dx, dr,
                                 dgamma, dbeta, acc_dx, acc_dr, acc_dgamma, acc_dbeta);
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
