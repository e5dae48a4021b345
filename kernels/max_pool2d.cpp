#include "kernels/max_pool2d.h"

namespace lk::cpu {

namespace {
// The networks' 2x2 stride-2 window, branch-free so that it vectorises: the
// same winner as the general loop (first of equal values, the last NaN).
template <typename T>
void max_pool2x2(i64 planes, i64 h, i64 w, const T* x, T* y, int32_t* idx) {
  const i64 oh = h / 2, ow = w / 2;
#pragma omp parallel for schedule(static)
  for (i64 p = 0; p < planes; ++p)
    for (i64 oy = 0; oy < oh; ++oy) {
      const T* r0 = x + p * h * w + 2 * oy * w;
      const T* r1 = r0 + w;
      T* yr = y + (p * oh + oy) * ow;
      int32_t* ir = idx + (p * oh + oy) * ow;
      const int32_t base = static_cast<int32_t>(2 * oy * w);
      const int32_t wi = static_cast<int32_t>(w);
#pragma omp simd
      for (i64 ox = 0; ox < ow; ++ox) {
        const int32_t i0 = base + 2 * static_cast<int32_t>(ox);
        T v = r0[2 * ox];
        int32_t at = i0;
        const T c1 = r0[2 * ox + 1], c2 = r1[2 * ox], c3 = r1[2 * ox + 1];
        bool take = c1 > v || c1 != c1;
        v = take ? c1 : v;
        at = take ? i0 + 1 : at;
        take = c2 > v || c2 != c2;
        v = take ? c2 : v;
        at = take ? i0 + wi : at;
        take = c3 > v || c3 != c3;
        v = take ? c3 : v;
        at = take ? i0 + wi + 1 : at;
        yr[ox] = v;
        ir[ox] = at;
      }
    }
}
}  // namespace

template <typename T>
void max_pool2d_fwd(i64 planes, i64 h, i64 w, i64 k, i64 stride, const T* x, T* y, int32_t* idx) {
  if (k == 2 && stride == 2) return max_pool2x2(planes, h, w, x, y, idx);
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
