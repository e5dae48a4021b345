// AdamW update of one tensor, exactly torch.optim.AdamW (decoupled weight
// decay, bias correction, eps outside the square root of v_hat):
//   p -= lr * wd * p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// The CUDA twin (kernels/cuda/adamw.h) updates every tensor in one launch.
#pragma once

#include "kernels/common.h"
#include "kernels/params.h"

namespace lk::cpu {

template <typename T>
void adamw_update(const AdamWParams& a, i64 step, i64 n, T* p, const T* g, T* m, T* v);

}  // namespace lk::cpu
