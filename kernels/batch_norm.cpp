#include "kernels/batch_norm.h"

#include <algorithm>
#include <cmath>

namespace lk::cpu {

template <typename T>
double batch_norm_channel_stats(i64 n, i64 c, i64 hw, i64 ch, const T* x, T* running_mean, T* running_var,
                              bool training, double momentum, double eps, T* save_mean, T* save_invstd) {
  double mean, var;
  if (training) {
    // One pass in double, shifted by the channel's first value so that a
    // mean far from zero costs no precision: mean = k + E[d], var = E[d^2] - E[d]^2.
    const double m = static_cast<double>(n * hw), k = x[ch * hw];
    double s = 0, ss = 0;
    for (i64 i = 0; i < n; ++i) {
      const T* p = x + (i * c + ch) * hw;
#pragma omp simd reduction(+ : s, ss)
      for (i64 j = 0; j < hw; ++j) {
        const double d = static_cast<double>(p[j]) - k;
        s += d;
        ss += d * d;
      }
    }
    const double ed = s / m;
    mean = k + ed;
    var = std::max(ss / m - ed * ed, 0.0);
    running_mean[ch] = static_cast<T>((1 - momentum) * running_mean[ch] + momentum * mean);
    running_var[ch] = static_cast<T>((1 - momentum) * running_var[ch] + momentum * var * m / (m - 1));
  } else {
    mean = running_mean[ch];
    var = running_var[ch];
  }
  save_mean[ch] = static_cast<T>(mean);
  save_invstd[ch] = static_cast<T>(1.0 / std::sqrt(var + eps));
  return mean;
}

template <typename T>
void batch_norm_fwd(i64 n, i64 c, i64 hw, const T* x, const T* gamma, const T* beta,
                    T* running_mean, T* running_var, bool training, double momentum, double eps,
                    T* y, T* save_mean, T* save_invstd) {
#pragma omp parallel for schedule(static)
  for (i64 ch = 0; ch < c; ++ch) {
    const double mean = batch_norm_channel_stats(n, c, hw, ch, x, running_mean, running_var, training, momentum,
                                                 eps, save_mean, save_invstd);
    const double invstd = save_invstd[ch];
    const T a = static_cast<T>(gamma[ch] * invstd);
    const T b = static_cast<T>(beta[ch] - mean * gamma[ch] * invstd);
    for (i64 i = 0; i < n; ++i) {
      const T* p = x + (i * c + ch) * hw;
      T* q = y + (i * c + ch) * hw;
#pragma omp simd
      for (i64 k = 0; k < hw; ++k) q[k] = a * p[k] + b;
    }
  }
}

template <typename T>
void batch_norm_bwd(i64 n, i64 c, i64 hw, const T* dy, const T* x, const T* gamma,
                    const T* save_mean, const T* save_invstd, bool training, T* dx, T* dgamma,
                    T* dbeta, bool acc_dx, bool acc_dgamma, bool acc_dbeta) {
  const double m = static_cast<double>(n * hw);
#pragma omp parallel for schedule(static)
  for (i64 ch = 0; ch < c; ++ch) {
    const double mean = save_mean[ch], invstd = save_invstd[ch];
    double sdy = 0, sdyc = 0;  // sum dy, sum dy * (x - mean)
    for (i64 i = 0; i < n; ++i) {
      const T* g = dy + (i * c + ch) * hw;
      const T* p = x + (i * c + ch) * hw;
#pragma omp simd reduction(+ : sdy, sdyc)
      for (i64 k = 0; k < hw; ++k) {
        sdy += g[k];
        sdyc += static_cast<double>(g[k]) * (static_cast<double>(p[k]) - mean);
      }
    }
    const double sdyx = sdyc * invstd;  // sum dy * xhat
    if (dgamma) put_grad(dgamma[ch], static_cast<T>(sdyx), acc_dgamma);
    if (dbeta) put_grad(dbeta[ch], static_cast<T>(sdy), acc_dbeta);
    if (!dx) continue;
    // dx = gamma*invstd * (dy - mean(dy) - xhat * mean(dy*xhat)) in training,
    // gamma*invstd * dy in evaluation: dx += A dy + B (x - mean) + C.
    const double scale = gamma[ch] * invstd;
    const T A = static_cast<T>(scale), B = static_cast<T>(training ? -scale * invstd * sdyx / m : 0.0),
            C = static_cast<T>(training ? -scale * sdy / m : 0.0), mu = static_cast<T>(mean);
    for (i64 i = 0; i < n; ++i) {
      const T* g = dy + (i * c + ch) * hw;
      const T* p = x + (i * c + ch) * hw;
      T* q = dx + (i * c + ch) * hw;
      if (acc_dx) {
#pragma omp simd
        for (i64 k = 0; k < hw; ++k) q[k] += A * g[k] + B * (p[k] - mu) + C;
      } else {
#pragma omp simd
        for (i64 k = 0; k < hw; ++k) q[k] = A * g[k] + B * (p[k] - mu) + C;
      }
    }
  }
}

namespace {

// The pieces of one channel of the synchronised batch norm (statistics
// summed over several processes' batches): two passes in double, the sum,
// then the squares around the whole batch's mean (a one-pass shift as in
// batch_norm_channel_stats needs one shift on every process).
template <typename T>
double channel_sum(i64 n, i64 c, i64 hw, i64 ch, const T* x) {
  double s = 0;
  for (i64 i = 0; i < n; ++i) {
    const T* p = x + (i * c + ch) * hw;
    for (i64 k = 0; k < hw; ++k) s += p[k];
  }
  return s;
}

template <typename T>
double channel_centred_squares(i64 n, i64 c, i64 hw, i64 ch, const T* x, double mean) {
  double ss = 0;
  for (i64 i = 0; i < n; ++i) {
    const T* p = x + (i * c + ch) * hw;
    for (i64 k = 0; k < hw; ++k) {
      const double d = p[k] - mean;
      ss += d * d;
    }
  }
  return ss;
}

// y = gamma * (x - mean) / sqrt(var + eps) + beta as a * x + b; saves mean and invstd.
template <typename T>
void channel_normalise(i64 n, i64 c, i64 hw, i64 ch, const T* x, const T* gamma, const T* beta, double mean,
                       double var, double eps, T* y, T* save_mean, T* save_invstd) {
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

}  // namespace

template <typename T>
void batch_norm_fwd_stats(i64 n, i64 c, i64 hw, const T* x, const T* gamma, const T* beta, const double* mean,
                          const double* var, double eps, T* y, T* save_mean, T* save_invstd) {
#pragma omp parallel for
  for (i64 ch = 0; ch < c; ++ch)
    channel_normalise(n, c, hw, ch, x, gamma, beta, mean[ch], var[ch], eps, y, save_mean, save_invstd);
}

namespace {

// Channel ch of the backward: sum dy and sum dy * xhat.
template <typename T>
void channel_bwd_sums(i64 n, i64 c, i64 hw, i64 ch, const T* dy, const T* x, double mean, double invstd,
                      double& sdy, double& sdyx) {
  sdy = 0, sdyx = 0;
  for (i64 i = 0; i < n; ++i) {
    const T* g = dy + (i * c + ch) * hw;
    const T* p = x + (i * c + ch) * hw;
    for (i64 k = 0; k < hw; ++k) {
      sdy += g[k];
      sdyx += g[k] * (p[k] - mean) * invstd;
    }
  }
}

// Channel ch of dx in training: dx += gamma*invstd * (dy - a - xhat * b),
// a = mean(dy), b = mean(dy*xhat).
template <typename T>
void channel_bwd_dx(i64 n, i64 c, i64 hw, i64 ch, const T* dy, const T* x, double gamma, double mean, double invstd,
                    double a, double b, T* dx) {
  const double scale = gamma * invstd;
  for (i64 i = 0; i < n; ++i) {
    const T* g = dy + (i * c + ch) * hw;
    const T* p = x + (i * c + ch) * hw;
    T* q = dx + (i * c + ch) * hw;
    for (i64 k = 0; k < hw; ++k) q[k] += static_cast<T>(scale * (g[k] - a - (p[k] - mean) * invstd * b));
  }
}

}  // namespace

template <typename T>
void batch_norm_sums(i64 n, i64 c, i64 hw, const T* x, const double* mean, const T* dy, const T* save_mean,
                     const T* save_invstd, double* out) {
#pragma omp parallel for
  for (i64 ch = 0; ch < c; ++ch) {
    if (dy)
      channel_bwd_sums(n, c, hw, ch, dy, x, static_cast<double>(save_mean[ch]), static_cast<double>(save_invstd[ch]),
                       out[ch], out[c + ch]);
    else
      out[ch] = mean ? channel_centred_squares(n, c, hw, ch, x, mean[ch]) : channel_sum(n, c, hw, ch, x);
  }
}

template <typename T>
void batch_norm_bwd_dx(i64 n, i64 c, i64 hw, const T* dy, const T* x, const T* gamma, const T* mean,
                       const T* invstd, const double* means, T* dx) {
#pragma omp parallel for
  for (i64 ch = 0; ch < c; ++ch)
    channel_bwd_dx(n, c, hw, ch, dy, x, static_cast<double>(gamma[ch]), static_cast<double>(mean[ch]),
                   static_cast<double>(invstd[ch]), means[ch], means[c + ch], dx);
}


#define LK_INST(T)                                                                             \
  template double batch_norm_channel_stats<T>(i64, i64, i64, i64, const T*, T*, T*, bool, double, \
                                            double, T*, T*);                                    \
  template void batch_norm_fwd<T>(i64, i64, i64, const T*, const T*, const T*, T*, T*, bool,    \
                                  double, double, T*, T*, T*);                                  \
  template void batch_norm_bwd<T>(i64, i64, i64, const T*, const T*, const T*, const T*,        \
                                  const T*, bool, T*, T*, T*, bool, bool, bool);                                  \
  template void batch_norm_sums<T>(i64, i64, i64, const T*, const double*, const T*, const T*, const T*, \
                                   double*);                                                        \
  template void batch_norm_fwd_stats<T>(i64, i64, i64, const T*, const T*, const T*, const double*,   \
                                        const double*, double, T*, T*, T*);                          \
  template void batch_norm_bwd_dx<T>(i64, i64, i64, const T*, const T*, const T*, const T*, const T*, \
                                     const double*, T*);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
