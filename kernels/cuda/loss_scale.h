// Dynamic loss scaling's per-step decision on the device (kernels/loss_scale.h):
// one one-thread launch on `stream` reads `total` (one float) and updates the
// float32 state array (kLossScaleStateSize floats) as cpu::loss_scale_update.
// Nothing passes from the host, so a captured step replays it.
#pragma once

#include "kernels/cuda/runtime_api.h"
#include "kernels/loss_scale.h"

LK_CUDA_NAMESPACE_BEGIN

// cudaErrorInvalidValue (nothing launched) for a null pointer.
cudaError_t loss_scale_update(const cpu::LossScaleParams& p, const float* total, float* state,
                              cudaStream_t stream = nullptr);

LK_CUDA_NAMESPACE_END
