#include "kernels/global_avg_pool.h"

namespace lk::cpu {

template <typename T>
void global_avg_pool_fwd(i64 planes, i64 hw, const T* x, T* y) {
#pragma omp parallel for
  for (i64 p = 0; p < planes; ++p) {
    T s = 0;
    for (i64 k = 0; k < hw; ++k) s += x[p * hw + k];
    y[p] = s / static_cast<T>(hw);
  }
}

template <typename T>
void global_avg_pool_bwd(i64 planes, i64 hw, const T* dy, T* dx, bool accumulate) {
#pragma omp parallel for
  for (i64 p = 0; p < planes; ++p) {
    const T g = dy[p] / static_cast<T>(hw);
    for (i64 k = 0; k < hw; ++k) put_grad(dx[p * hw + k], g, accumulate);
  }
}

#define LK_INST(T)                                                        \
  template void global_avg_pool_fwd<T>(i64, i64, const T*, T*);           \
  template void global_avg_pool_bwd<T>(i64, i64, const T*, T*, bool);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
