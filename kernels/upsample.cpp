#include "kernels/upsample.h"

#include <algorithm>
#include <vector>

namespace lk::cpu {

namespace {
// Source taps of every output coordinate along one axis.
struct Taps {
  std::vector<i64> i0, i1;
  std::vector<double> l1;  // weight of i1; i0 gets 1 - l1
};

Taps make_taps(UpsampleMode mode, i64 in, i64 f) {
  const i64 out = in * f;
  Taps t;
  t.i0.resize(out);
  t.i1.resize(out);
  t.l1.resize(out);
  for (i64 o = 0; o < out; ++o) {
    if (mode == UpsampleMode::Nearest) {
      t.i0[o] = t.i1[o] = o / f;
      t.l1[o] = 0;
      continue;
    }
    double src = (static_cast<double>(o) + 0.5) / static_cast<double>(f) - 0.5;
    if (src < 0) src = 0;
    const i64 i0 = std::min(static_cast<i64>(src), in - 1);
    t.i0[o] = i0;
    t.i1[o] = std::min(i0 + 1, in - 1);
    t.l1[o] = src - static_cast<double>(i0);
  }
  return t;
}
}  // namespace

template <typename T>
void upsample_fwd(UpsampleMode mode, i64 planes, i64 h, i64 w, i64 f, const T* x, T* y) {
  const Taps ty = make_taps(mode, h, f), tx = make_taps(mode, w, f);
  const i64 oh = h * f, ow = w * f;
#pragma omp parallel for
  for (i64 p = 0; p < planes; ++p) {
    const T* xp = x + p * h * w;
    T* yp = y + p * oh * ow;
    for (i64 oy = 0; oy < oh; ++oy) {
      const T* r0 = xp + ty.i0[oy] * w;
      const T* r1 = xp + ty.i1[oy] * w;
      const T ly = static_cast<T>(ty.l1[oy]);
      for (i64 ox = 0; ox < ow; ++ox) {
        const T lx = static_cast<T>(tx.l1[ox]);
        const i64 a = tx.i0[ox], b = tx.i1[ox];
        const T top = (T(1) - lx) * r0[a] + lx * r0[b];
        const T bot = (T(1) - lx) * r1[a] + lx * r1[b];
        yp[oy * ow + ox] = (T(1) - ly) * top + ly * bot;
      }
    }
  }
}

template <typename T>
void upsample_bwd(UpsampleMode mode, i64 planes, i64 h, i64 w, i64 f, const T* dy, T* dx, bool accumulate) {
  const Taps ty = make_taps(mode, h, f), tx = make_taps(mode, w, f);
  const i64 oh = h * f, ow = w * f;
#pragma omp parallel for
  for (i64 p = 0; p < planes; ++p) {
    T* xp = dx + p * h * w;
    clear_unless(accumulate, xp, h * w);
    const T* yp = dy + p * oh * ow;
    for (i64 oy = 0; oy < oh; ++oy) {
      T* r0 = xp + ty.i0[oy] * w;
      T* r1 = xp + ty.i1[oy] * w;
      const T ly = static_cast<T>(ty.l1[oy]);
      for (i64 ox = 0; ox < ow; ++ox) {
        const T g = yp[oy * ow + ox];
        const T lx = static_cast<T>(tx.l1[ox]);
        const i64 a = tx.i0[ox], b = tx.i1[ox];
        r0[a] += (T(1) - ly) * (T(1) - lx) * g;
        r0[b] += (T(1) - ly) * lx * g;
        r1[a] += ly * (T(1) - lx) * g;
        r1[b] += ly * lx * g;
      }
    }
  }
}

#define LK_INST(T)                                                                      \
  template void upsample_fwd<T>(UpsampleMode, i64, i64, i64, i64, const T*, T*);        \
  template void upsample_bwd<T>(UpsampleMode, i64, i64, i64, i64, const T*, T*, bool);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
