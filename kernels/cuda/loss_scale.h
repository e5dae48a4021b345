// The float16 loss scaler's step on the device (kernels/loss_scale.h): every
// float32 gradient multiplied in place by 1/S and checked, then the decision
// made, in two launches on `stream` - one over a (tensor, chunk) table of all
// the gradients (kernels/cuda/tensor_table.h) that also sets the state's
// non-finite flag, then a one-thread update of the state array
// (kLossScaleStateSize floats) as cpu::loss_scale_update. Nothing passes from
// the host per step (1/S is read from the state), so a captured step replays
// it; the table's owner builds it once (grad_unscale_table) and keeps it
// uploaded (engine/cuda/backend_cuda_ops.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cuda/runtime_api.h"
#include "kernels/cuda/tensor_table.h"
#include "kernels/loss_scale.h"

LK_CUDA_NAMESPACE_BEGIN

// One gradient (device pointer, numel floats).
struct GradUnscaleTensor {
  float* grad;
  int64_t numel;
};

// cudaErrorInvalidValue for numel < 0, a null grad of numel > 0, or what
// make_tensor_table refuses. Empty tensors get no chunk.
cudaError_t grad_unscale_table(const std::vector<GradUnscaleTensor>& grads, TensorTable* table);

// The step over the table at `device_table` (table.bytes uploaded there,
// 8-byte aligned): one launch without chunks (no gradient: a clean step).
// cudaErrorInvalidValue (nothing launched) for a null state, or a null
// device table beside chunks.
cudaError_t grad_unscale(const TensorTable& table, const void* device_table, const cpu::LossScaleParams& p,
                         float* state, cudaStream_t stream = nullptr);

inline constexpr int kGradUnscaleThreads = 256;

LK_CUDA_NAMESPACE_END
