#include "kernels/conv_transpose2d.h"

#include <algorithm>

namespace lk::cpu {

template <typename T>
void conv_transpose2d_fwd(const ConvGeom& cg, const T* x, const T* w, const T* b, T* y, ConvImpl impl) {
  // y = bias, then y += conv^T(x): the adjoint conv's backward-data pass.
  const i64 hw = cg.h * cg.w;
#pragma omp parallel for
  for (i64 nc = 0; nc < cg.n * cg.c_in; ++nc)
    std::fill(y + nc * hw, y + (nc + 1) * hw, b ? b[nc % cg.c_in] : T(0));
  conv2d_bwd_data(impl, cg, x, w, y);
}

template <typename T>
void conv_transpose2d_bwd_data(const ConvGeom& cg, const T* dy, const T* w, T* dx, ConvImpl impl) {
  conv2d_fwd<T>(impl, cg, dy, w, nullptr, dx, true);
}

template <typename T>
void conv_transpose2d_bwd_weight(const ConvGeom& cg, const T* dy, const T* x, T* dw, T* db, ConvImpl impl) {
  // The adjoint conv's weight gradient with the roles of its input and
  // output gradient swapped: dw[ci, co, ky, kx] += sum x[ci] * dy[co shifted].
  conv2d_bwd_weight<T>(impl, cg, x, dy, dw, nullptr);
  if (db) channel_sum_acc(cg.n, cg.c_in, cg.h * cg.w, dy, db);
}

#define LK_INST(T)                                                                       \
  template void conv_transpose2d_fwd<T>(const ConvGeom&, const T*, const T*, const T*, T*, ConvImpl); \
  template void conv_transpose2d_bwd_data<T>(const ConvGeom&, const T*, const T*, T*, ConvImpl);      \
  template void conv_transpose2d_bwd_weight<T>(const ConvGeom&, const T*, const T*, T*, T*, ConvImpl);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
