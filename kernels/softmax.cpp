#include "kernels/softmax.h"

#include <cmath>

namespace lk::cpu {

template <typename T>
void softmax_fwd(i64 n, i64 c, i64 hw, const T* x, T* y) {
#pragma omp parallel for collapse(2)
  for (i64 i = 0; i < n; ++i)
    for (i64 p = 0; p < hw; ++p) {
      const T* xp = x + i * c * hw + p;
      T* yp = y + i * c * hw + p;
      T mx = xp[0];
      for (i64 k = 1; k < c; ++k) mx = std::max(mx, xp[k * hw]);
      T s = 0;
      for (i64 k = 0; k < c; ++k) s += (yp[k * hw] = std::exp(xp[k * hw] - mx));
      const T inv = T(1) / s;
      for (i64 k = 0; k < c; ++k) yp[k * hw] *= inv;
    }
}

template <typename T>
void softmax_bwd(i64 n, i64 c, i64 hw, const T* dy, const T* y, T* dx, bool accumulate) {
#pragma omp parallel for collapse(2)
  for (i64 i = 0; i < n; ++i)
    for (i64 p = 0; p < hw; ++p) {
      const i64 base = i * c * hw + p;
      T dot = 0;
      for (i64 k = 0; k < c; ++k) dot += dy[base + k * hw] * y[base + k * hw];
      for (i64 k = 0; k < c; ++k) put_grad(dx[base + k * hw], y[base + k * hw] * (dy[base + k * hw] - dot), accumulate);
    }
}

#define LK_INST(T)                                                             \
  template void softmax_fwd<T>(i64, i64, i64, const T*, T*);                   \
  template void softmax_bwd<T>(i64, i64, i64, const T*, const T*, T*, bool);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
