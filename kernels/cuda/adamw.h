// Multi-tensor AdamW on CUDA (float): one step updates every parameter,
// exactly as lk::AdamW::step (engine/optim.cpp, torch.optim.AdamW), for step t:
//   p -= lr * wd * p                       (decoupled weight decay)
//   m  = beta1 * m + (1 - beta1) * g
//   v  = beta2 * v + (1 - beta2) * g^2
//   p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps),  bc_i = 1 - beta_i^t
// Tensors whose grad pointer is null (no gradient this step) are skipped and
// left untouched, as are empty ones.
//
// Nothing comes from the host per step: lr and t live in a device state
// array (kernels/adamw.h: AdamWSlot), and a step is two launches on `stream`:
// a one-thread kernel that advances t and derives the step's scalars in double
// (1 - lr*wd, lr/bc1, sqrt(bc2)), then the update, which reads them (as
// float) and runs over a (tensor, chunk) table that also lives on the device
// (kernels/cuda/tensor_table.h): its owner builds it once (adamw_table),
// uploads it once and keeps it (engine/cuda/backend_cuda_ops.cpp); a step can
// then be captured in a CUDA Graph and replayed.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cuda/runtime_api.h"
#include "kernels/cuda/tensor_table.h"

LK_CUDA_NAMESPACE_BEGIN

// One parameter tensor (device pointers, numel floats each).
struct AdamWTensor {
  float* param;
  const float* grad;  // null: skipped
  float* exp_avg;     // m
  float* exp_avg_sq;  // v
  int64_t numel;
};

// Builds the table of the tensors that have a gradient. cudaErrorInvalidValue
// for numel < 0, a null param/exp_avg/exp_avg_sq beside a gradient, or more
// than INT32_MAX tensors or chunks of one tensor.
cudaError_t adamw_table(const std::vector<AdamWTensor>& tensors, TensorTable* table);

// One step: state (device, kAdamWStateSize doubles: lr and t as the previous
// step left them) is advanced, then every tensor of the table at
// `device_table` (table.bytes uploaded there, 8-byte aligned) is updated.
// cudaSuccess without a launch when the table is empty; cudaErrorInvalidValue
// (nothing launched) for a null state or table. `skip` (device, one float, or
// null): when not 0 at run time the step is skipped - t, the parameters and
// the moments stay (cpu::adamw_advance; the float16 loss scaler's overflow
// flag, decided on the device, so the step still replays in a graph).
cudaError_t adamw_step(const TensorTable& table, const void* device_table, double* state, double beta1, double beta2,
                       double eps, double weight_decay, cudaStream_t stream = nullptr, const float* skip = nullptr);

// Writes the learning rate into the state (one one-thread launch: no copy
// from the host, so it is ordered on `stream` like everything else).
cudaError_t adamw_set_lr(double* state, double lr, cudaStream_t stream = nullptr);

inline constexpr int kAdamWThreads = 256;

LK_CUDA_NAMESPACE_END
