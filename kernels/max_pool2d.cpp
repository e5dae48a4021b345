#include "kernels/max_pool2d.h"

namespace lk::cpu {

template <typename T>
void max_pool2d_fwd(i64 planes, i64 h, i64 w, i64 k, i64 stride, const T* x, T* y, int32_t* idx) {
  const i64 oh = (h - k) / stride + 1, ow = (w - k) / stride + 1;
#pragma omp parallel for
  for (i64 p = 0; p < planes; ++p) {
    const T* xp = x + p * h * w;
    for (i64 oy = 0; oy < oh; ++oy)
      for (i64 ox = 0; ox < ow; ++ox) {
        i64 best = oy * stride * w + ox * stride;
        for (i64 ky = 0; ky < k; ++ky)
          for (i64 kx = 0; kx < k; ++kx) {
            const i64 at = (oy * stride + ky) * w + ox * stride + kx;
            if (xp[at] > xp[best] || xp[at] != xp[at]) best = at;  // NaN propagates
          }
        y[(p * oh + oy) * ow + ox] = xp[best];
        idx[(p * oh + oy) * ow + ox] = static_cast<int32_t>(best);
      }
  }
}

template <typename T>
void max_pool2d_bwd(i64 planes, i64 h, i64 w, i64 k, i64 stride, const T* dy, const int32_t* idx, T* dx,
                    bool accumulate) {
  const i64 oh = (h - k) / stride + 1, ow = (w - k) / stride + 1;
#pragma omp parallel for
  for (i64 p = 0; p < planes; ++p) {
    clear_unless(accumulate, dx + p * h * w, h * w);
    for (i64 o = 0; o < oh * ow; ++o) dx[p * h * w + idx[p * oh * ow + o]] += dy[p * oh * ow + o];
  }
}

#define LK_INST(T)                                                                          \
  template void max_pool2d_fwd<T>(i64, i64, i64, i64, i64, const T*, T*, int32_t*);         \
  template void max_pool2d_bwd<T>(i64, i64, i64, i64, i64, const T*, const int32_t*, T*, bool);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
