#include "kernels/binary.h"

#include <algorithm>

namespace lk::cpu {

namespace {
// Element strides of a (possibly broadcast) operand inside the output index
// space: 0 along broadcast dims.
Dims4 bcast_strides(const Dims4& s) {
  Dims4 st{};
  i64 acc = 1;
  for (int d = 3; d >= 0; --d) {
    st[d] = s[d] == 1 ? 0 : acc;
    acc *= s[d];
  }
  return st;
}
}  // namespace

template <typename T>
void binary_fwd(BinaryOp op, const Dims4& out, const T* a, const Dims4& sa, const T* b,
                const Dims4& sb, T* y) {
  const Dims4 ta = bcast_strides(sa), tb = bcast_strides(sb);
  const i64 inner = out[3];
#pragma omp parallel for collapse(3)
  for (i64 i0 = 0; i0 < out[0]; ++i0)
    for (i64 i1 = 0; i1 < out[1]; ++i1)
      for (i64 i2 = 0; i2 < out[2]; ++i2) {
        const T* pa = a + i0 * ta[0] + i1 * ta[1] + i2 * ta[2];
        const T* pb = b + i0 * tb[0] + i1 * tb[1] + i2 * tb[2];
        T* py = y + ((i0 * out[1] + i1) * out[2] + i2) * inner;
        for (i64 i3 = 0; i3 < inner; ++i3) {
          const T va = pa[i3 * ta[3]], vb = pb[i3 * tb[3]];
          py[i3] = op == BinaryOp::Add ? va + vb : va * vb;
        }
      }
}

// d[i] (+)= g[i] * o[i * step] (o null: g[i]), one loop per case so that
// each vectorises (put_grad's test of accumulate inside the loop, and the
// strided read of o, kept GCC's loop scalar).
template <typename T, bool Acc>
static void grad_row(i64 n, const T* g, const T* o, i64 step, T* d) {
  const auto put = [d](i64 i, T v) {
    if constexpr (Acc) d[i] += v;
    else d[i] = v;
  };
  if (!o) {
#pragma omp simd
    for (i64 i = 0; i < n; ++i) put(i, g[i]);
  } else if (step == 0) {
    const T c = o[0];
#pragma omp simd
    for (i64 i = 0; i < n; ++i) put(i, g[i] * c);
  } else if (step == 1) {
#pragma omp simd
    for (i64 i = 0; i < n; ++i) put(i, g[i] * o[i]);
  } else {
    for (i64 i = 0; i < n; ++i) put(i, g[i] * o[i * step]);
  }
}

template <typename T>
void binary_bwd(BinaryOp op, const Dims4& out, const T* dy, const Dims4& s_self,
                const T* other, const Dims4& s_other, T* d_self, bool accumulate) {
  const Dims4 to = bcast_strides(s_other);
  if (s_self == out) {
    // No reduction: rows of the output in parallel, contiguous inner loop.
#pragma omp parallel for collapse(3)
    for (i64 i0 = 0; i0 < out[0]; ++i0)
      for (i64 i1 = 0; i1 < out[1]; ++i1)
        for (i64 i2 = 0; i2 < out[2]; ++i2) {
          const i64 row = ((i0 * out[1] + i1) * out[2] + i2) * out[3];
          const T* po = op == BinaryOp::Add ? nullptr : other + i0 * to[0] + i1 * to[1] + i2 * to[2];
          accumulate ? grad_row<T, true>(out[3], dy + row, po, to[3], d_self + row)
                     : grad_row<T, false>(out[3], dy + row, po, to[3], d_self + row);
        }
    return;
  }
  // One destination element per iteration (race-free); the inner loops run
  // over the dims along which `self` was broadcast.
  const i64 n_self = s_self[0] * s_self[1] * s_self[2] * s_self[3];
#pragma omp parallel for
  for (i64 e = 0; e < n_self; ++e) {
    Dims4 idx;
    i64 r = e;
    for (int d = 3; d >= 0; --d) {
      idx[d] = r % s_self[d];
      r /= s_self[d];
    }
    Dims4 lo, hi;
    for (int d = 0; d < 4; ++d) {
      const bool reduced = s_self[d] == 1 && out[d] > 1;
      lo[d] = reduced ? 0 : idx[d];
      hi[d] = reduced ? out[d] : idx[d] + 1;
    }
    T acc = 0;
    for (i64 i0 = lo[0]; i0 < hi[0]; ++i0)
      for (i64 i1 = lo[1]; i1 < hi[1]; ++i1)
        for (i64 i2 = lo[2]; i2 < hi[2]; ++i2) {
          const i64 row = ((i0 * out[1] + i1) * out[2] + i2) * out[3];
          const T* po = other + i0 * to[0] + i1 * to[1] + i2 * to[2];
          for (i64 i3 = lo[3]; i3 < hi[3]; ++i3)
            acc += op == BinaryOp::Add ? dy[row + i3] : dy[row + i3] * po[i3 * to[3]];
        }
    put_grad(d_self[e], acc, accumulate);
  }
}

template <typename T>
void fill(i64 n, T value, T* y) {
#pragma omp parallel for simd if (n > kGrain)
  for (i64 i = 0; i < n; ++i) y[i] = value;
}

template <typename T>
void axpy(i64 n, T a, const T* x, T* y, bool accumulate) {
#pragma omp parallel for simd if (n > kGrain)
  for (i64 i = 0; i < n; ++i) put_grad(y[i], a * x[i], accumulate);
}

#define LK_INST(T)                                                                           \
  template void binary_fwd<T>(BinaryOp, const Dims4&, const T*, const Dims4&, const T*,      \
                              const Dims4&, T*);                                             \
  template void binary_bwd<T>(BinaryOp, const Dims4&, const T*, const Dims4&, const T*,      \
                              const Dims4&, T*, bool);                                       \
  template void fill<T>(i64, T, T*);                                                         \
  template void axpy<T>(i64, T, const T*, T*, bool);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
