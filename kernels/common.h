// Shared helpers of the CPU kernels. Kernels work on raw contiguous NCHW
// pointers with geometry already validated by the op layer (engine/ops).
// Backward kernels ADD into their gradient outputs (dlib's contract), so a
// tensor used twice accumulates without an extra buffer.
#pragma once

#include <cstdint>

// Instantiates a kernel template for the two floating types we train and
// gradient-check in.
#define LK_INSTANTIATE_FLOAT(MACRO) \
  MACRO(float)                      \
  MACRO(double)

namespace lk::cpu {
using i64 = int64_t;

// Elementwise loops shorter than this run on the calling thread: waking the
// OpenMP team costs more than it saves (PyTorch's grain size).
constexpr i64 kGrain = 32768;
}  // namespace lk::cpu
