// Dynamic loss scaling's per-step decision in a one-thread kernel.
#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/loss_scale.h"

LK_CUDA_NAMESPACE_BEGIN
namespace {

__global__ void loss_scale_update_kernel(cpu::LossScaleParams p, const float* total, float* state) {
  cpu::loss_scale_update(p, *total, state);
}

}  // namespace

cudaError_t loss_scale_update(const cpu::LossScaleParams& p, const float* total, float* state, cudaStream_t stream) {
  if (!total || !state) return cudaErrorInvalidValue;
  return LK_LAUNCH(loss_scale_update_kernel, 1, 1, 0, stream)(p, total, state);
}

LK_CUDA_NAMESPACE_END
