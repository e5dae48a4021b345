#include "kernels/adamw.h"

#include <cmath>

namespace lk::cpu {

template <typename T>
void adamw_update(const AdamWParams& a, i64 step, i64 n, T* p, const T* g, T* m, T* v) {
  // The step's scalars in double, rounded to T once; the update in T (as the
  // CUDA kernel and PyTorch's float32 AdamW), so it vectorises.
  const double bc1 = 1 - std::pow(a.beta1, static_cast<double>(step));
  const double bc2 = 1 - std::pow(a.beta2, static_cast<double>(step));
  const T decay = static_cast<T>(1 - a.lr * a.weight_decay), b1 = static_cast<T>(a.beta1),
          b2 = static_cast<T>(a.beta2), c1 = static_cast<T>(1 - a.beta1), c2 = static_cast<T>(1 - a.beta2),
          step_size = static_cast<T>(a.lr / bc1), sqrt_bc2 = static_cast<T>(std::sqrt(bc2)),
          eps = static_cast<T>(a.eps);
#pragma omp parallel for simd schedule(static)
  for (i64 k = 0; k < n; ++k) {
    const T gk = g[k];
    const T mk = b1 * m[k] + c1 * gk;
    const T vk = b2 * v[k] + c2 * gk * gk;
    m[k] = mk;
    v[k] = vk;
    p[k] = p[k] * decay - step_size * mk / (std::sqrt(vk) / sqrt_bc2 + eps);
  }
}

bool adamw_advance(double* s, double beta1, double beta2, double weight_decay, const float* skip) {
  s[kAdamWSkipped] = skip && *skip != 0.0f ? 1.0 : 0.0;
  if (s[kAdamWSkipped] != 0.0) return false;
  const double t = s[kAdamWStep] + 1, lr = s[kAdamWLr];
  s[kAdamWStep] = t;
  s[kAdamWDecay] = 1 - lr * weight_decay;
  s[kAdamWStepSize] = lr / (1 - std::pow(beta1, t));
  s[kAdamWSqrtBc2] = std::sqrt(1 - std::pow(beta2, t));
  return true;
}

#define LK_INST(T) template void adamw_update<T>(const AdamWParams&, i64, i64, T*, const T*, T*, T*);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
