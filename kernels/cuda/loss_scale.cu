// The float16 loss scaler's unscale (one launch over every gradient) and its
// decision (a one-thread kernel).
#include <vector>

#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/loss_scale.h"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kThreads = kGradUnscaleThreads;

// g *= 1/S over the table's chunks; a block that saw a product not finite
// sets the state's flag (one atomic store per such block: the same value
// from every writer, and no read of it here, so no order is needed).
__global__ void __launch_bounds__(kThreads, 4)
    grad_unscale_kernel(TableView<GradUnscaleTensor> table, float* state) {
  const float inv = state[cpu::kLossScaleInv];
  int bad = 0;
  for (int64_t q = blockIdx.x; q < table.n; q += gridDim.x) {
    const TableChunk ch = table.chunks[q];
    const GradUnscaleTensor t = table.tensors[ch.tensor];
    const ChunkRange r = chunk_range(ch, t.numel);
    for (int64_t k = r.begin + threadIdx.x; k < r.end; k += blockDim.x) {
      const float g = t.grad[k] * inv;
      t.grad[k] = g;
      bad |= cpu::loss_scale_finite(g) ? 0 : 1;
    }
  }
  if (__syncthreads_or(bad) && threadIdx.x == 0) atomicExch(state + cpu::kLossScaleNonFinite, 1.0f);
}

__global__ void loss_scale_update_kernel(cpu::LossScaleParams p, float* state) { cpu::loss_scale_update(p, state); }

}  // namespace

cudaError_t grad_unscale_table(const std::vector<GradUnscaleTensor>& grads, TensorTable* table) {
  std::vector<GradUnscaleTensor> active;
  for (const GradUnscaleTensor& g : grads) {
    if (g.numel < 0 || (g.numel > 0 && !g.grad)) return cudaErrorInvalidValue;
    if (g.numel > 0) active.push_back(g);
  }
  return make_tensor_table(active, table);
}

cudaError_t grad_unscale(const TensorTable& table, const void* device_table, const cpu::LossScaleParams& p,
                         float* state, cudaStream_t stream) {
  if (!state || (table.chunks > 0 && !device_table)) return cudaErrorInvalidValue;
  if (table.chunks > 0) {
    const cudaError_t e = LK_LAUNCH(grad_unscale_kernel, table_blocks(table.chunks), kThreads, 0, stream)(
        table_view<GradUnscaleTensor>(table, device_table), state);
    if (e != cudaSuccess) return e;
  }
  return LK_LAUNCH(loss_scale_update_kernel, 1, 1, 0, stream)(p, state);
}

LK_CUDA_NAMESPACE_END
