#include "kernels/concat.h"

#include <cstring>

namespace lk::cpu {

template <typename T>
void concat_fwd(i64 n, i64 c_src, i64 c_dst, i64 offset, i64 hw, const T* src, T* dst) {
#pragma omp parallel for
  for (i64 i = 0; i < n; ++i)
    std::memcpy(dst + (i * c_dst + offset) * hw, src + i * c_src * hw, sizeof(T) * c_src * hw);
}

template <typename T>
void concat_bwd(i64 n, i64 c_src, i64 c_dst, i64 offset, i64 hw, const T* ddst, T* dsrc, bool accumulate) {
#pragma omp parallel for
  for (i64 i = 0; i < n; ++i) {
    const T* g = ddst + (i * c_dst + offset) * hw;
    T* d = dsrc + i * c_src * hw;
    for (i64 k = 0; k < c_src * hw; ++k) put_grad(d[k], g[k], accumulate);
  }
}

#define LK_INST(T)                                                                   \
  template void concat_fwd<T>(i64, i64, i64, i64, i64, const T*, T*);                \
  template void concat_bwd<T>(i64, i64, i64, i64, i64, const T*, T*, bool);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
