#include "kernels/linear.h"

#include "kernels/gemm.h"

namespace lk::cpu {

template <typename T>
void linear_fwd(i64 n, i64 in, i64 out, const T* x, const T* w, const T* b, T* y) {
  for (i64 i = 0; i < n; ++i)
    for (i64 o = 0; o < out; ++o) y[i * out + o] = b ? b[o] : T(0);
  gemm<T>(false, true, n, out, in, T(1), x, in, w, in, T(1), y, out);
}

template <typename T>
void linear_bwd(i64 n, i64 in, i64 out, const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, bool acc_dx,
                bool acc_dw, bool acc_db) {
  if (dx) gemm<T>(false, false, n, in, out, T(1), dy, out, w, in, T(acc_dx ? 1 : 0), dx, in);
  if (dw) gemm<T>(true, false, out, in, n, T(1), dy, out, x, in, T(acc_dw ? 1 : 0), dw, in);
  if (db) {
    clear_unless(acc_db, db, out);
    for (i64 i = 0; i < n; ++i)
      for (i64 o = 0; o < out; ++o) db[o] += dy[i * out + o];
  }
}

#define LK_INST(T)                                                                      \
  template void linear_fwd<T>(i64, i64, i64, const T*, const T*, const T*, T*);         \
  template void linear_bwd<T>(i64, i64, i64, const T*, const T*, const T*, T*, T*, T*, bool, bool, bool);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
