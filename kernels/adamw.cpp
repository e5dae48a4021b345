#include "kernels/adamw.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

namespace lk::cpu {

namespace {

// The step's scalars in double, rounded to T once; the update in T (as the
// CUDA kernel and PyTorch's float32 AdamW), so it vectorises.
template <typename T>
struct Scalars {
  T decay, b1, b2, c1, c2, step_size, sqrt_bc2, eps;
  Scalars(const AdamWParams& a, i64 step) {
    const double bc1 = 1 - std::pow(a.beta1, static_cast<double>(step));
    const double bc2 = 1 - std::pow(a.beta2, static_cast<double>(step));
    decay = static_cast<T>(1 - a.lr * a.weight_decay), b1 = static_cast<T>(a.beta1), b2 = static_cast<T>(a.beta2);
    c1 = static_cast<T>(1 - a.beta1), c2 = static_cast<T>(1 - a.beta2), step_size = static_cast<T>(a.lr / bc1);
    sqrt_bc2 = static_cast<T>(std::sqrt(bc2)), eps = static_cast<T>(a.eps);
  }
};

template <typename T>
inline void update_range(const Scalars<T>& s, i64 lo, i64 hi, T* p, const T* g, T* m, T* v) {
#pragma omp simd
  for (i64 k = lo; k < hi; ++k) {
    const T gk = g[k];
    const T mk = s.b1 * m[k] + s.c1 * gk;
    const T vk = s.b2 * v[k] + s.c2 * gk * gk;
    m[k] = mk;
    v[k] = vk;
    p[k] = p[k] * s.decay - s.step_size * mk / (std::sqrt(vk) / s.sqrt_bc2 + s.eps);
  }
}

}  // namespace

template <typename T>
void adamw_update(const AdamWParams& a, i64 step, i64 n, T* p, const T* g, T* m, T* v) {
  const AdamWTensor<T> t{n, p, g, m, v};
  adamw_update_multi(a, step, &t, 1);
}

template <typename T>
void adamw_update_multi(const AdamWParams& a, i64 step, const AdamWTensor<T>* tensors, i64 count) {
  const Scalars<T> s(a, step);
  i64 total = 0;
  for (i64 i = 0; i < count; ++i) total += tensors[i].n;
#pragma omp parallel if (total > 4096)
  {
    // This thread's share [lo, hi) of the concatenated elements, in 16-float
    // (64-byte) units so that no two threads write one cache line of a tensor.
    const i64 nt = omp_get_num_threads(), id = omp_get_thread_num(), units = (total + 15) / 16;
    const i64 lo = units * id / nt * 16, hi = std::min(total, units * (id + 1) / nt * 16);
    i64 base = 0;
    for (i64 i = 0; i < count && base < hi; base += tensors[i].n, ++i) {
      const AdamWTensor<T>& t = tensors[i];
      const i64 b = std::max(lo, base) - base, e = std::min(hi, base + t.n) - base;
      if (b < e) update_range(s, b, e, t.p, t.g, t.m, t.v);
    }
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

#define LK_INST(T)                                                                      \
  template void adamw_update<T>(const AdamWParams&, i64, i64, T*, const T*, T*, T*); \
  template void adamw_update_multi<T>(const AdamWParams&, i64, const AdamWTensor<T>*, i64);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
