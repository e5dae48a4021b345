#include "kernels/conv_transpose2d.h"

#include <algorithm>

namespace lk::cpu {

template <typename T>
void conv_transpose2d_fwd(const ConvGeom& cg, const T* x, const T* w, const T* b, T* y, bool plain_loops) {
  // y = bias, then y += conv^T(x): the adjoint conv's backward-data pass.
  const i64 hw = cg.h * cg.w;
#pragma omp parallel for
  for (i64 nc = 0; nc < cg.n * cg.c_in; ++nc)
    std::fill(y + nc * hw, y + (nc + 1) * hw, b ? b[nc % cg.c_in] : T(0));
  if (plain_loops) conv2d_bwd_data_ref(cg, x, w, y);
  else conv2d_bwd_data(cg, x, w, y);
}

template <typename T>
void conv_transpose2d_bwd_data(const ConvGeom& cg, const T* dy, const T* w, T* dx, bool plain_loops) {
  if (plain_loops) conv2d_fwd_ref<T>(cg, dy, w, nullptr, dx, true);
  else conv2d_fwd<T>(cg, dy, w, nullptr, dx, true);
}

template <typename T>
void conv_transpose2d_bwd_weight(const ConvGeom& cg, const T* dy, const T* x, T* dw, T* db, bool plain_loops) {
  // The adjoint conv's weight gradient with the roles of its input and
  // output gradient swapped: dw[ci, co, ky, kx] += sum x[ci] * dy[co shifted].
  if (plain_loops) conv2d_bwd_weight_ref<T>(cg, x, dy, dw, nullptr);
  else conv2d_bwd_weight<T>(cg, x, dy, dw, nullptr);
  if (db) channel_sum_acc(cg.n, cg.c_in, cg.h * cg.w, dy, db);
}

#define LK_INST(T)                                                                       \
  template void conv_transpose2d_fwd<T>(const ConvGeom&, const T*, const T*, const T*, T*, bool); \
  template void conv_transpose2d_bwd_data<T>(const ConvGeom&, const T*, const T*, T*, bool);      \
  template void conv_transpose2d_bwd_weight<T>(const ConvGeom&, const T*, const T*, T*, T*, bool);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
