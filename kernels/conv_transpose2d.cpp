#include "kernels/conv_transpose2d.h"

#include <algorithm>

namespace lk::cpu {

ConvGeom conv_t_geom(i64 n, i64 c_in, i64 h, i64 w, i64 c_out, i64 k, i64 stride, i64 pad, i64 dil) {
  ConvGeom g;
  g.n = n;
  g.c_in = c_out;  // the adjoint convolution reads y ...
  g.h = (h - 1) * stride - 2 * pad + dil * (k - 1) + 1;
  g.w = (w - 1) * stride - 2 * pad + dil * (k - 1) + 1;
  g.c_out = c_in;  // ... and writes x
  g.kh = g.kw = k;
  g.stride = stride;
  g.pad = pad;
  g.dil = dil;
  g.groups = 1;
  g.oh = h;
  g.ow = w;
  return g;
}

template <typename T>
void conv_t2d_fwd(const ConvGeom& cg, const T* x, const T* w, const T* b, T* y, bool reference) {
  // y = bias, then y += conv^T(x): the adjoint conv's backward-data pass.
  const i64 hw = cg.h * cg.w;
#pragma omp parallel for
  for (i64 nc = 0; nc < cg.n * cg.c_in; ++nc)
    std::fill(y + nc * hw, y + (nc + 1) * hw, b ? b[nc % cg.c_in] : T(0));
  if (reference) conv2d_bwd_data_ref(cg, x, w, y);
  else conv2d_bwd_data(cg, x, w, y);
}

template <typename T>
void conv_t2d_bwd_data(const ConvGeom& cg, const T* dy, const T* w, T* dx, bool reference) {
  if (reference) conv2d_fwd_ref<T>(cg, dy, w, nullptr, dx, true);
  else conv2d_fwd<T>(cg, dy, w, nullptr, dx, true);
}

template <typename T>
void conv_t2d_bwd_weight(const ConvGeom& cg, const T* dy, const T* x, T* dw, T* db, bool reference) {
  // The adjoint conv's weight gradient with the roles of its input and
  // output gradient swapped: dw[ci, co, ky, kx] += sum x[ci] * dy[co shifted].
  if (reference) conv2d_bwd_weight_ref<T>(cg, x, dy, dw, nullptr);
  else conv2d_bwd_weight<T>(cg, x, dy, dw, nullptr);
  if (db) channel_sum_acc(cg.n, cg.c_in, cg.h * cg.w, dy, db);
}

#define LK_INST(T)                                                                       \
  template void conv_t2d_fwd<T>(const ConvGeom&, const T*, const T*, const T*, T*, bool); \
  template void conv_t2d_bwd_data<T>(const ConvGeom&, const T*, const T*, T*, bool);      \
  template void conv_t2d_bwd_weight<T>(const ConvGeom&, const T*, const T*, T*, T*, bool);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
