#include "kernels/cross_entropy.h"

#include <cmath>
#include <vector>

#include "kernels/softmax.h"

namespace lk::cpu {

template <typename T>
i64 cross_entropy_fwd(i64 n, i64 c, i64 hw, const T* logits, const int32_t* target,
                      const T* weight, T* loss, T* probs, T* wsum) {
  for (i64 i = 0; i < n * hw; ++i)
    if (target[i] < 0 || target[i] >= c) return i;
  softmax_fwd(n, c, hw, logits, probs);
  // Partial sums per image, added in a fixed order afterwards: the loss is
  // bitwise reproducible whatever the thread timing (checkpoint resume
  // continues with identical losses).
  std::vector<double> num_n(n, 0.0), den_n(n, 0.0);
#pragma omp parallel for
  for (i64 i = 0; i < n; ++i) {
    double num = 0, den = 0;
    for (i64 p = 0; p < hw; ++p) {
      const i64 t = target[i * hw + p];
      const T* z = logits + i * c * hw + p;
      T mx = z[0];
      for (i64 k = 1; k < c; ++k) mx = std::max(mx, z[k * hw]);
      T s = 0;
      for (i64 k = 0; k < c; ++k) s += std::exp(z[k * hw] - mx);
      const double logp = static_cast<double>(z[t * hw] - mx - std::log(s));
      num += -static_cast<double>(weight[t]) * logp;
      den += static_cast<double>(weight[t]);
    }
    num_n[i] = num;
    den_n[i] = den;
  }
  double num = 0, den = 0;
  for (i64 i = 0; i < n; ++i) num += num_n[i], den += den_n[i];
  loss[0] = static_cast<T>(num / den);
  wsum[0] = static_cast<T>(den);
  return -1;
}

template <typename T>
void cross_entropy_bwd(i64 n, i64 c, i64 hw, const T* dloss, const T* probs,
                       const int32_t* target, const T* weight, const T* wsum, T* dlogits, bool accumulate) {
  const T scale = dloss[0] / wsum[0];
#pragma omp parallel for collapse(2)
  for (i64 i = 0; i < n; ++i)
    for (i64 p = 0; p < hw; ++p) {
      const i64 t = target[i * hw + p];
      const T g = scale * weight[t];
      const i64 base = i * c * hw + p;
      for (i64 k = 0; k < c; ++k)
        put_grad(dlogits[base + k * hw], g * (probs[base + k * hw] - (k == t ? T(1) : T(0))), accumulate);
    }
}

#define LK_INST(T)                                                                            \
  template i64 cross_entropy_fwd<T>(i64, i64, i64, const T*, const int32_t*, const T*, T*, T*, \
                                    T*);                                                      \
  template void cross_entropy_bwd<T>(i64, i64, i64, const T*, const T*, const int32_t*,       \
                                     const T*, const T*, T*, bool);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
