// Row-major GEMM through OpenBLAS: C = alpha * op(A) @ op(B) + beta * C,
// op(A) is M x K, op(B) is K x N, C is M x N with leading dimensions as given.
#pragma once

#include "kernels/common.h"

namespace lk::cpu {

template <typename T>
void gemm(bool trans_a, bool trans_b, i64 m, i64 n, i64 k, T alpha, const T* a, i64 lda,
          const T* b, i64 ldb, T beta, T* c, i64 ldc);

}  // namespace lk::cpu
