// Softmax over channels and fused softmax + weighted cross-entropy, float.
// One thread per pixel: the pixel's C logits are C loads HW apart, coalesced
// across the threads of a warp. The loss is a two-level deterministic
// reduction: per block (double, fixed shuffle tree, warps in order) into the
// workspace, then one block adds the partials in a fixed order.
#include <climits>
#include <cstdint>

#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/loss_reduce.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kThreads = kSoftmaxThreads;
constexpr int kMaxGridY = 65535;
constexpr int kFinalThreads = 256;

using loss_detail::CrossEntropyPartial;
using loss_detail::pixel_max_sum;

dim3 pixel_grid(int64_t n, int64_t hw) {
  const int64_t gx = (hw + kThreads - 1) / kThreads;
  return dim3(static_cast<unsigned>(gx < kSoftmaxMaxBlocksX ? gx : kSoftmaxMaxBlocksX),
              static_cast<unsigned>(n < kMaxGridY ? n : kMaxGridY));
}

size_t partial_count(int64_t n, int64_t hw) {
  if (n <= 0 || hw <= 0) return 0;
  const dim3 g = pixel_grid(n, hw);
  return static_cast<size_t>(g.x) * g.y;
}

// The LabelError slot of the workspace (cross_entropy_fwd_checked) follows the partials.
size_t bad_slot_offset(int64_t n, int64_t hw) { return partial_count(n, hw) * sizeof(CrossEntropyPartial); }

__global__ void __launch_bounds__(kThreads)
    softmax_fwd_kernel(int64_t n, int c, int64_t hw, const float* __restrict__ x, float* __restrict__ y) {
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  for (int64_t img = blockIdx.y; img < n; img += gridDim.y)
    for (int64_t p = int64_t(blockIdx.x) * kThreads + threadIdx.x; p < hw; p += stride) {
      const float* z = x + img * c * hw + p;
      float* q = y + img * c * hw + p;
      float mx, s;
      pixel_max_sum(z, hw, c, mx, s);
      const float inv = 1.f / s;
      for (int k = 0; k < c; ++k) q[k * hw] = expf(z[k * hw] - mx) * inv;
    }
}

__global__ void __launch_bounds__(kThreads)
    softmax_bwd_kernel(int64_t n, int c, int64_t hw, const float* __restrict__ dy, const float* __restrict__ y,
                       float* __restrict__ dx, bool accumulate) {
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  for (int64_t img = blockIdx.y; img < n; img += gridDim.y)
    for (int64_t p = int64_t(blockIdx.x) * kThreads + threadIdx.x; p < hw; p += stride) {
      const int64_t base = img * c * hw + p;
      float dot = 0.f;
      for (int k = 0; k < c; ++k) dot += dy[base + k * hw] * y[base + k * hw];
      for (int k = 0; k < c; ++k) lk_put_grad(dx[base + k * hw], y[base + k * hw] * (dy[base + k * hw] - dot), accumulate);
    }
}

// probs, and the block's partial of the loss (partials[blockIdx.y * gridDim.x + blockIdx.x]).
__global__ void __launch_bounds__(kThreads)
    cross_entropy_fwd_kernel(int64_t n, int c, int64_t hw, const float* __restrict__ logits,
                             const int32_t* __restrict__ target, const float* __restrict__ weight,
                             float* __restrict__ probs, CrossEntropyPartial* __restrict__ partials) {
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  double num = 0.0, den = 0.0;
  int64_t bad = INT64_MAX;
  for (int64_t img = blockIdx.y; img < n; img += gridDim.y)
    for (int64_t p = int64_t(blockIdx.x) * kThreads + threadIdx.x; p < hw; p += stride) {
      const float* z = logits + img * c * hw + p;
      float* q = probs + img * c * hw + p;
      float mx, s;
      pixel_max_sum(z, hw, c, mx, s);
      const float inv = 1.f / s;
      for (int k = 0; k < c; ++k) q[k * hw] = expf(z[k * hw] - mx) * inv;
      const int64_t i = img * hw + p;
      loss_detail::ce_pixel(z, hw, c, __ldg(target + i), mx, s, weight, i, num, den, bad);
    }
  const CrossEntropyPartial r = loss_detail::ce_block_reduce(num, den, bad);
  if (threadIdx.x == 0) partials[blockIdx.y * gridDim.x + blockIdx.x] = r;
}

// One block: the final pass (loss_reduce.cuh).
__global__ void __launch_bounds__(kFinalThreads)
    cross_entropy_final_kernel(const CrossEntropyPartial* __restrict__ partials, int count,
                               const int32_t* __restrict__ target, float* __restrict__ loss, float* __restrict__ wsum,
                               LabelError* __restrict__ error) {
  loss_detail::ce_final(partials, count, target, loss, wsum, error);
}

// Six blocks of 256 (at most 42 registers): without the minimum, ptxas (CUDA 13, sm_90)
// holds it to 32-40 registers and spills 4-8 bytes (docs/ptxas.md).
__global__ void __launch_bounds__(kThreads, 6)
    cross_entropy_bwd_kernel(int64_t n, int c, int64_t hw, const float* __restrict__ dloss,
                             const float* __restrict__ probs, const int32_t* __restrict__ target,
                             const float* __restrict__ weight, const float* __restrict__ wsum,
                             float* __restrict__ dlogits, bool accumulate) {
  const float scale = __ldg(dloss) / __ldg(wsum);
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  for (int64_t img = blockIdx.y; img < n; img += gridDim.y)
    for (int64_t p = int64_t(blockIdx.x) * kThreads + threadIdx.x; p < hw; p += stride) {
      const int t = __ldg(target + img * hw + p);
      const int64_t base = img * c * hw + p;
      if (t < 0 || t >= c) {  // contributes nothing
        if (!accumulate)
          for (int k = 0; k < c; ++k) dlogits[base + k * hw] = 0.f;
        continue;
      }
      const float g = scale * (weight ? __ldg(weight + t) : 1.f);
      for (int k = 0; k < c; ++k)
        lk_put_grad(dlogits[base + k * hw], g * (probs[base + k * hw] - (k == t ? 1.f : 0.f)), accumulate);
    }
}

bool bad_sizes(int64_t n, int64_t c, int64_t hw) { return n < 0 || hw < 0 || c <= 0 || c > INT_MAX; }

}  // namespace

cudaError_t softmax_fwd(int64_t n, int64_t c, int64_t hw, const float* x, float* y, cudaStream_t stream) {
  if (bad_sizes(n, c, hw)) return cudaErrorInvalidValue;
  if (n == 0 || hw == 0) return cudaSuccess;
  return LK_LAUNCH(softmax_fwd_kernel, pixel_grid(n, hw), kThreads, 0, stream)(n, static_cast<int>(c), hw, x, y);
}

cudaError_t softmax_bwd(int64_t n, int64_t c, int64_t hw, const float* dy, const float* y, float* dx,
                        cudaStream_t stream, bool accumulate) {
  if (bad_sizes(n, c, hw)) return cudaErrorInvalidValue;
  if (n == 0 || hw == 0) return cudaSuccess;
  return LK_LAUNCH(softmax_bwd_kernel, pixel_grid(n, hw), kThreads, 0, stream)(n, static_cast<int>(c), hw, dy, y,
                                                                                 dx, accumulate);
}

size_t cross_entropy_workspace_bytes(int64_t n, int64_t hw) { return bad_slot_offset(n, hw) + sizeof(LabelError); }

cudaError_t cross_entropy_fwd(int64_t n, int64_t c, int64_t hw, const float* logits, const int32_t* target,
                           const float* weight, float* probs, float* loss, float* wsum, LabelError* error,
                           void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (bad_sizes(n, c, hw) || !loss || !wsum || !workspace) return cudaErrorInvalidValue;
  if (workspace_bytes < cross_entropy_workspace_bytes(n, hw) || reinterpret_cast<uintptr_t>(workspace) % 8 != 0)
    return cudaErrorInvalidValue;
  auto* partials = static_cast<CrossEntropyPartial*>(workspace);
  const int count = static_cast<int>(partial_count(n, hw));
  if (count > 0) {
    const cudaError_t e = LK_LAUNCH(cross_entropy_fwd_kernel, pixel_grid(n, hw), kThreads, 0, stream)(
        n, static_cast<int>(c), hw, logits, target, weight, probs, partials);
    if (e != cudaSuccess) return e;
  }
  // No pixel: loss = 0/0 (NaN, as the CPU kernel), wsum = 0.
  return LK_LAUNCH(cross_entropy_final_kernel, 1, kFinalThreads, 0, stream)(partials, count, target, loss, wsum, error);
}

cudaError_t cross_entropy_fwd_checked(int64_t n, int64_t c, int64_t hw, const float* logits, const int32_t* target,
                                   const float* weight, float* probs, float* loss, float* wsum, int64_t* first_bad,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (bad_sizes(n, c, hw) || !workspace || workspace_bytes < cross_entropy_workspace_bytes(n, hw))
    return cudaErrorInvalidValue;
  auto* slot = reinterpret_cast<LabelError*>(static_cast<char*>(workspace) + bad_slot_offset(n, hw));
  cudaError_t e = cudaMemsetAsync(slot, 0xFF, sizeof(LabelError), stream);  // no error recorded
  if (e == cudaSuccess)
    e = cross_entropy_fwd(n, c, hw, logits, target, weight, probs, loss, wsum, slot, workspace, workspace_bytes, stream);
  if (e != cudaSuccess) return e;
  LabelError bad{-1, -1};
  e = cudaMemcpyAsync(&bad, slot, sizeof(bad), cudaMemcpyDeviceToHost, stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess) return e;
  if (first_bad) *first_bad = bad.index;
  return bad.index >= 0 ? kErrorBadLabel : cudaSuccess;
}

cudaError_t cross_entropy_bwd(int64_t n, int64_t c, int64_t hw, const float* dloss, const float* probs,
                           const int32_t* target, const float* weight, const float* wsum, float* dlogits,
                           cudaStream_t stream, bool accumulate) {
  if (bad_sizes(n, c, hw) || !dloss || !wsum) return cudaErrorInvalidValue;
  if (n == 0 || hw == 0) return cudaSuccess;
  return LK_LAUNCH(cross_entropy_bwd_kernel, pixel_grid(n, hw), kThreads, 0, stream)(
      n, static_cast<int>(c), hw, dloss, probs, target, weight, wsum, dlogits, accumulate);
}

LK_CUDA_NAMESPACE_END
