#include "kernels/activation.h"

#include <cmath>

#include "kernels/vec_math.h"

namespace lk::cpu {

template <typename T>
void activation_fwd(Activation a, i64 n, const T* x, T* y) {
  if (a == Activation::Relu) {
#pragma omp parallel for simd if (n > kGrain)
    for (i64 i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
  } else {
    // Stable for large |x|: exp only ever sees a non-positive argument.
#pragma omp parallel for simd if (n > kGrain)
    for (i64 i = 0; i < n; ++i) y[i] = sigmoid(x[i]);
  }
}

template <typename T>
void activation_bwd(Activation a, i64 n, const T* dy, const T* y, T* dx, bool accumulate) {
  if (a == Activation::Relu) {
    // Branch-free, so it vectorises (a branch on random signs mispredicts).
#pragma omp parallel for simd if (n > kGrain)
    for (i64 i = 0; i < n; ++i) put_grad(dx[i], static_cast<T>(y[i] > T(0)) * dy[i], accumulate);
  } else {
#pragma omp parallel for simd if (n > kGrain)
    for (i64 i = 0; i < n; ++i) put_grad(dx[i], dy[i] * y[i] * (T(1) - y[i]), accumulate);
  }
}

#define LK_INST(T)                                                         \
  template void activation_fwd<T>(Activation, i64, const T*, T*);          \
  template void activation_bwd<T>(Activation, i64, const T*, const T*, T*, bool);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
