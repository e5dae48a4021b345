// Multi-tensor AdamW on CUDA (float): one launch updates every parameter,
// exactly as lk::AdamW::step (engine/optim.cpp, torch.optim.AdamW), for step t:
//   p -= lr * wd * p                       (decoupled weight decay)
//   m  = beta1 * m + (1 - beta1) * g
//   v  = beta2 * v + (1 - beta2) * g^2
//   p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps),  bc_i = 1 - beta_i^t
// Tensors whose grad pointer is null (no gradient this step) are skipped and
// left untouched, as are empty ones. The per-step scalars are computed in
// double on the host, the element updates in float.
//
// The device table: the launcher builds it from the host vector itself, as
// one stream-ordered allocation on `stream` (cudaMallocAsync, cudaMemcpyAsync
// from the host, the launch, cudaFreeAsync), so the call does not block the
// host and the vector may be destroyed when it returns. The table lists the
// tensors and, per kAdamWChunk elements of each, a (tensor, chunk) entry;
// block b updates chunks b, b + gridDim.x, ...: no per-element search, and
// many small tensors cost no more than one large one.
//
// Returns cudaSuccess without a launch when there is nothing to update;
// cudaErrorInvalidValue (nothing launched) for step < 1, numel < 0, or a null
// param/exp_avg/exp_avg_sq beside a gradient; otherwise the first error of the
// allocation, the copy, the launch or the free.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

// One parameter tensor (device pointers, numel floats each).
struct AdamWTensor {
  float* param;
  const float* grad;  // null: skipped
  float* exp_avg;     // m
  float* exp_avg_sq;  // v
  int64_t numel;
};

// step: the step count t after this step (1 for the first).
cudaError_t adamw_step(const std::vector<AdamWTensor>& tensors, double lr, double beta1, double beta2, double eps,
                       double weight_decay, int64_t step, cudaStream_t stream = nullptr);

inline constexpr int kAdamWThreads = 256;
inline constexpr int64_t kAdamWChunk = 4096;  // elements per (tensor, chunk) entry

LK_CUDA_NAMESPACE_END
