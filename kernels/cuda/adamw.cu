// Multi-tensor AdamW step (float), one launch over a (tensor, chunk) table,
// after a one-thread launch that derives the step's scalars on the device.
#include <cmath>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/cuda_compat.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kThreads = kAdamWThreads;

// t += 1 and the step's scalars, in double (as cpu::adamw_advance), or a
// skipped step when the skip flag is set.
__global__ void adamw_advance_kernel(double* state, double beta1, double beta2, double weight_decay,
                                     const float* skip) {
  state[cpu::kAdamWSkipped] = skip && *skip != 0.0f ? 1.0 : 0.0;
  if (state[cpu::kAdamWSkipped] != 0.0) return;
  const double t = state[cpu::kAdamWStep] + 1, lr = state[cpu::kAdamWLr];
  state[cpu::kAdamWStep] = t;
  state[cpu::kAdamWDecay] = 1 - lr * weight_decay;
  state[cpu::kAdamWStepSize] = lr / (1 - pow(beta1, t));
  state[cpu::kAdamWSqrtBc2] = sqrt(1 - pow(beta2, t));
}

__global__ void adamw_set_lr_kernel(double* state, double lr) { state[cpu::kAdamWLr] = lr; }

__global__ void __launch_bounds__(kThreads)
    adamw_kernel(TableView<AdamWTensor> table, const double* __restrict__ state, float beta1, float beta2,
                 float one_minus_beta1, float one_minus_beta2, float eps) {
  if (state[cpu::kAdamWSkipped] != 0.0) return;  // the loss scaler's overflow: nothing changes
  // The step's scalars, rounded to float from double.
  const float decay = static_cast<float>(state[cpu::kAdamWDecay]);
  const float step_size = static_cast<float>(state[cpu::kAdamWStepSize]);
  const float sqrt_bc2 = static_cast<float>(state[cpu::kAdamWSqrtBc2]);
  for (int64_t q = blockIdx.x; q < table.n; q += gridDim.x) {
    const TableChunk ch = table.chunks[q];
    const AdamWTensor t = table.tensors[ch.tensor];
    const ChunkRange r = chunk_range(ch, t.numel);
    for (int64_t k = r.begin + threadIdx.x; k < r.end; k += blockDim.x) {
      const float g = t.grad[k];
      float p = t.param[k] * decay;
      const float m = beta1 * t.exp_avg[k] + one_minus_beta1 * g;
      const float v = beta2 * t.exp_avg_sq[k] + one_minus_beta2 * g * g;
      p -= step_size * m / (sqrtf(v) / sqrt_bc2 + eps);
      t.param[k] = p;
      t.exp_avg[k] = m;
      t.exp_avg_sq[k] = v;
    }
  }
}

}  // namespace

cudaError_t adamw_table(const std::vector<AdamWTensor>& tensors, TensorTable* table) {
  std::vector<AdamWTensor> active;
  for (const AdamWTensor& t : tensors) {
    if (t.numel < 0) return cudaErrorInvalidValue;
    if (!t.grad || t.numel == 0) continue;
    if (!t.param || !t.exp_avg || !t.exp_avg_sq) return cudaErrorInvalidValue;
    active.push_back(t);
  }
  return make_tensor_table(active, table);
}

cudaError_t adamw_step(const TensorTable& table, const void* device_table, double* state, double beta1, double beta2,
                       double eps, double weight_decay, cudaStream_t stream, const float* skip) {
  if (!state || (table.chunks > 0 && !device_table)) return cudaErrorInvalidValue;
  // The step count advances even when no tensor has a gradient (as lk::AdamW).
  const cudaError_t e = LK_LAUNCH(adamw_advance_kernel, 1, 1, 0, stream)(state, beta1, beta2, weight_decay, skip);
  if (e != cudaSuccess || table.chunks == 0) return e;
  return LK_LAUNCH(adamw_kernel, table_blocks(table.chunks), kThreads, 0, stream)(
      table_view<AdamWTensor>(table, device_table), state, static_cast<float>(beta1), static_cast<float>(beta2),
      static_cast<float>(1 - beta1), static_cast<float>(1 - beta2), static_cast<float>(eps));
}

cudaError_t adamw_set_lr(double* state, double lr, cudaStream_t stream) {
  if (!state) return cudaErrorInvalidValue;
  return LK_LAUNCH(adamw_set_lr_kernel, 1, 1, 0, stream)(state, lr);
}

LK_CUDA_NAMESPACE_END
