#include "kernels/tversky.h"

#include <algorithm>
#include <vector>

namespace lk::cpu {

template <typename T>
i64 tversky_fwd(const TverskyParams& tp, i64 n, i64 c, i64 hw, const T* probs,
                const int32_t* target, T* loss, T* stats) {
  for (i64 i = 0; i < n * hw; ++i)
    if (target[i] < 0 || target[i] >= c) return i;
  // Per (image, class) partial counts, summed in a fixed order afterwards so
  // the loss and its gradient are bitwise reproducible.
  std::vector<double> part(static_cast<size_t>(n * c * 3), 0.0);
#pragma omp parallel for collapse(2)
  for (i64 i = 0; i < n; ++i)
    for (i64 k = 0; k < c; ++k) {
      double a = 0, s = 0, y = 0;
      const T* pk = probs + (i * c + k) * hw;
      const int32_t* t = target + i * hw;
      for (i64 p = 0; p < hw; ++p) {
        s += pk[p];
        if (t[p] == k) {
          a += pk[p];
          y += 1;
        }
      }
      double* out = &part[static_cast<size_t>((i * c + k) * 3)];
      out[0] = a, out[1] = s, out[2] = y;
    }
  std::vector<double> tpc(c, 0.0), sp(c, 0.0), sy(c, 0.0);
  for (i64 i = 0; i < n; ++i)
    for (i64 k = 0; k < c; ++k) {
      const double* q = &part[static_cast<size_t>((i * c + k) * 3)];
      tpc[k] += q[0], sp[k] += q[1], sy[k] += q[2];
    }
  std::vector<double> fp(c), fn(c);
  for (i64 k = 0; k < c; ++k) fp[k] = sp[k] - tpc[k], fn[k] = sy[k] - tpc[k];
  tversky_finish(tp, c, tpc.data(), fp.data(), fn.data(), loss, stats);
  return -1;
}

template <typename T>
void tversky_finish(const TverskyParams& tp, i64 c, const double* TP, const double* FP, const double* FN, T* loss,
                    T* stats) {
  double sum_ratio = 0;
  for (i64 k = 0; k < c; ++k) {
    const double alpha = FP[k] + FN[k] > 0 ? std::clamp(FP[k] / (FP[k] + FN[k]), tp.alpha_min, tp.alpha_max) : 0.5;
    sum_ratio += TP[k] / (TP[k] + alpha * FP[k] + (1 - alpha) * FN[k] + tp.eps);
    stats[k] = static_cast<T>(TP[k]);
    stats[c + k] = static_cast<T>(FP[k]);
    stats[2 * c + k] = static_cast<T>(FN[k]);
    stats[3 * c + k] = static_cast<T>(alpha);
  }
  loss[0] = static_cast<T>(1.0 - sum_ratio / static_cast<double>(c));
}

template <typename T>
void tversky_bwd(const TverskyParams& tp, i64 n, i64 c, i64 hw, const T* dloss,
                 const int32_t* target, const T* stats, T* dprobs, bool accumulate) {
  // Per class: g_y for pixels of that class, g_n for the others.
  std::vector<T> g_y(c), g_n(c);
  for (i64 k = 0; k < c; ++k) {
    const double TP = stats[k], FP = stats[c + k], FN = stats[2 * c + k], alpha = stats[3 * c + k];
    const double D = TP + alpha * FP + (1 - alpha) * FN + tp.eps;
    const double s = -static_cast<double>(dloss[0]) / static_cast<double>(c) / (D * D);
    double da_y = 0, da_n = 0;  // dalpha/dp for pixels of class k, and the others
    const double den = FP + FN;
    if (!tp.detach_alpha && den > 0) {
      const double raw = FP / den;
      if (raw > tp.alpha_min && raw < tp.alpha_max) {
        da_y = FP / (den * den);
        da_n = FN / (den * den);
      }
    }
    g_y[k] = static_cast<T>(s * (D - TP * (alpha + (FP - FN) * da_y)));
    g_n[k] = static_cast<T>(s * (-TP * (alpha + (FP - FN) * da_n)));
  }
#pragma omp parallel for collapse(2)
  for (i64 i = 0; i < n; ++i)
    for (i64 k = 0; k < c; ++k) {
      T* d = dprobs + (i * c + k) * hw;
      const int32_t* t = target + i * hw;
      for (i64 p = 0; p < hw; ++p) put_grad(d[p], t[p] == k ? g_y[k] : g_n[k], accumulate);
    }
}

#define LK_INST(T)                                                                            \
  template i64 tversky_fwd<T>(const TverskyParams&, i64, i64, i64, const T*, const int32_t*,  \
                              T*, T*);                                                        \
  template void tversky_bwd<T>(const TverskyParams&, i64, i64, i64, const T*, const int32_t*, \
                               const T*, T*, bool);                                          \
  template void tversky_finish<T>(const TverskyParams&, i64, const double*, const double*,    \
                                  const double*, T*, T*);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
