#include "kernels/adamw.h"

#include <cmath>

namespace lk::cpu {

template <typename T>
void adamw_update(const AdamWParams& a, i64 step, i64 n, T* p, const T* g, T* m, T* v) {
  const double bc1 = 1 - std::pow(a.beta1, static_cast<double>(step));
  const double bc2 = 1 - std::pow(a.beta2, static_cast<double>(step));
  const double lr_step = a.lr / bc1, sq = std::sqrt(bc2), decay = 1 - a.lr * a.weight_decay;
#pragma omp parallel for
  for (i64 k = 0; k < n; ++k) {
    p[k] = static_cast<T>(p[k] * decay);
    m[k] = static_cast<T>(a.beta1 * m[k] + (1 - a.beta1) * g[k]);
    v[k] = static_cast<T>(a.beta2 * v[k] + (1 - a.beta2) * g[k] * g[k]);
    p[k] = static_cast<T>(p[k] - lr_step * m[k] / (std::sqrt(static_cast<double>(v[k])) / sq + a.eps));
  }
}

void adamw_advance(double* s, double beta1, double beta2, double weight_decay) {
  const double t = s[kAdamWStep] + 1, lr = s[kAdamWLr];
  s[kAdamWStep] = t;
  s[kAdamWDecay] = 1 - lr * weight_decay;
  s[kAdamWStepSize] = lr / (1 - std::pow(beta1, t));
  s[kAdamWSqrtBc2] = std::sqrt(1 - std::pow(beta2, t));
}

#define LK_INST(T) template void adamw_update<T>(const AdamWParams&, i64, i64, T*, const T*, T*, T*);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
