// Multi-tensor AdamW step (float), one launch over a (tensor, chunk) table,
// after a one-thread launch that derives the step's scalars on the device.
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/cuda_compat.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kThreads = kAdamWThreads;
constexpr int64_t kMaxBlocks = 65535;

struct Chunk {
  int32_t tensor;  // index into the tensor list
  int32_t index;   // elements [index * kAdamWChunk, (index + 1) * kAdamWChunk) of it
};

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
    adamw_kernel(const AdamWTensor* __restrict__ tensors, const Chunk* __restrict__ chunks, int64_t n_chunks,
                 const double* __restrict__ state, float beta1, float beta2, float one_minus_beta1,
                 float one_minus_beta2, float eps) {
  if (state[cpu::kAdamWSkipped] != 0.0) return;  // the loss scaler's overflow: nothing changes
  // The step's scalars, rounded to float from double.
  const float decay = static_cast<float>(state[cpu::kAdamWDecay]);
  const float step_size = static_cast<float>(state[cpu::kAdamWStepSize]);
  const float sqrt_bc2 = static_cast<float>(state[cpu::kAdamWSqrtBc2]);
  for (int64_t q = blockIdx.x; q < n_chunks; q += gridDim.x) {
    const Chunk ch = chunks[q];
    const AdamWTensor t = tensors[ch.tensor];
    const int64_t begin = int64_t(ch.index) * kAdamWChunk;
    const int64_t end = begin + kAdamWChunk < t.numel ? begin + kAdamWChunk : t.numel;
    for (int64_t k = begin + threadIdx.x; k < end; k += blockDim.x) {
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

cudaError_t adamw_table(const std::vector<AdamWTensor>& tensors, AdamWTable* table) {
  if (!table) return cudaErrorInvalidValue;
  std::vector<AdamWTensor> active;
  std::vector<Chunk> chunks;
  for (const AdamWTensor& t : tensors) {
    if (t.numel < 0) return cudaErrorInvalidValue;
    if (!t.grad || t.numel == 0) continue;
    if (!t.param || !t.exp_avg || !t.exp_avg_sq) return cudaErrorInvalidValue;
    const int64_t n = (t.numel + kAdamWChunk - 1) / kAdamWChunk;
    if (n > INT32_MAX || active.size() >= static_cast<size_t>(INT32_MAX)) return cudaErrorInvalidValue;
    for (int64_t i = 0; i < n; ++i) chunks.push_back({static_cast<int32_t>(active.size()), static_cast<int32_t>(i)});
    active.push_back(t);
  }
  table->tensor_bytes = active.size() * sizeof(AdamWTensor);
  table->chunks = static_cast<int64_t>(chunks.size());
  table->bytes.resize(table->tensor_bytes + chunks.size() * sizeof(Chunk));
  if (!active.empty()) std::memcpy(table->bytes.data(), active.data(), table->tensor_bytes);
  if (!chunks.empty())
    std::memcpy(table->bytes.data() + table->tensor_bytes, chunks.data(), chunks.size() * sizeof(Chunk));
  return cudaSuccess;
}

cudaError_t adamw_step(const AdamWTable& table, const void* device_table, double* state, double beta1, double beta2,
                       double eps, double weight_decay, cudaStream_t stream, const float* skip) {
  if (!state || (table.chunks > 0 && !device_table)) return cudaErrorInvalidValue;
  // The step count advances even when no tensor has a gradient (as lk::AdamW).
  const cudaError_t e = LK_LAUNCH(adamw_advance_kernel, 1, 1, 0, stream)(state, beta1, beta2, weight_decay, skip);
  if (e != cudaSuccess || table.chunks == 0) return e;
  const auto* d_tensors = static_cast<const AdamWTensor*>(device_table);
  const auto* d_chunks = reinterpret_cast<const Chunk*>(static_cast<const unsigned char*>(device_table) + table.tensor_bytes);
  const int64_t n = table.chunks;
  return LK_LAUNCH(adamw_kernel, n < kMaxBlocks ? n : kMaxBlocks, kThreads, 0, stream)(
      d_tensors, d_chunks, n, state, static_cast<float>(beta1), static_cast<float>(beta2),
      static_cast<float>(1 - beta1), static_cast<float>(1 - beta2), static_cast<float>(eps));
}

cudaError_t adamw_set_lr(double* state, double lr, cudaStream_t stream) {
  if (!state) return cudaErrorInvalidValue;
  return LK_LAUNCH(adamw_set_lr_kernel, 1, 1, 0, stream)(state, lr);
}

LK_CUDA_NAMESPACE_END
