// Shared helpers of the CPU kernels. Kernels work on raw contiguous NCHW
// pointers with geometry already validated by the op layer (engine/ops).
// Backward kernels write each gradient output in one of two modes, chosen per
// output by a trailing `accumulate` flag (default true): ADD into it (dlib's
// contract: a tensor used twice accumulates without an extra buffer), or
// OVERWRITE it (beta = 0: the buffer holds nothing valid yet and every
// element is written), so the first contribution to a gradient needs no
// zero-fill pass (engine/autograd.h).
#pragma once

#include <algorithm>
#include <cstdint>

// Instantiates a kernel template for the two floating types we train and
// gradient-check in.
#define LK_INSTANTIATE_FLOAT(MACRO) \
  MACRO(float)                      \
  MACRO(double)

namespace lk::cpu {
using i64 = int64_t;

// out = out + v (accumulate) or v.
template <typename T>
inline void put_grad(T& out, T v, bool accumulate) {
  out = accumulate ? out + v : v;
}

// For kernels that scatter-add into an output: zeroes its n elements first
// when it is overwritten (inside the kernel, while the plane is in cache).
template <typename T>
inline void clear_unless(bool accumulate, T* p, i64 n) {
  if (!accumulate && p) std::fill(p, p + n, T(0));
}

// Elementwise loops shorter than this run on the calling thread: waking the
// OpenMP team costs more than it saves (PyTorch's grain size).
constexpr i64 kGrain = 32768;
}  // namespace lk::cpu
