// Adaptive Tversky loss, float: per-(image, class, chunk) soft counts, a
// one-block final pass (per class: a warp adds the partials in a fixed order),
// and an elementwise backward whose blocks derive their class's g_y / g_n
// from the device stats.
#include <climits>
#include <cstdint>

#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/loss_reduce.cuh"
#include "kernels/cuda/tversky.h"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kThreads = kTverskyThreads;
constexpr int kFinalThreads = 256;

int chunk_count(int64_t hw) {
  const int64_t per = int64_t(kThreads) * kTverskyItems;
  const int64_t ch = (hw + per - 1) / per;
  return static_cast<int>(ch < 1 ? 1 : (ch > kTverskyMaxChunks ? kTverskyMaxChunks : ch));
}
int64_t chunk_len(int64_t hw, int chunks) { return (hw + chunks - 1) / chunks; }

// Workspace: [partials c*n*chunks*3 double][bad n*chunks int64][per class 3 double][LabelError slot]
struct Layout {
  size_t part, bad, cls, slot, total;
};
Layout layout(int64_t n, int64_t c, int64_t hw) {
  const size_t chunks = static_cast<size_t>(chunk_count(hw));
  Layout l{};
  l.part = 0;
  l.bad = l.part + static_cast<size_t>(c * n) * chunks * 3 * sizeof(double);
  l.cls = l.bad + static_cast<size_t>(n) * chunks * sizeof(int64_t);
  l.slot = l.cls + static_cast<size_t>(c) * 3 * sizeof(double);
  l.total = l.slot + sizeof(LabelError);
  return l;
}


// Grid (planes = n*c, chunks). Block (plane, chunk) counts its chunk of the
// class plane: TP part (sum of p where t == k), sum of p, count of t == k.
// The class-0 blocks also record the chunk's first out-of-range label.
__global__ void __launch_bounds__(kThreads)
    tversky_count_kernel(int n, int c, int64_t hw, int64_t len, const float* __restrict__ probs,
                         const int32_t* __restrict__ target, double* __restrict__ part, int64_t* __restrict__ bad_part) {
  LK_SHARED(double, s_a, [kThreads / 32]);
  LK_SHARED(double, s_s, [kThreads / 32]);
  LK_SHARED(int, s_y, [kThreads / 32]);
  LK_SHARED(int64_t, s_bad, [kThreads / 32]);
  const int plane = static_cast<int>(blockIdx.x), img = plane / c, k = plane - img * c;
  const int chunk = static_cast<int>(blockIdx.y), chunks = static_cast<int>(gridDim.y);
  const int64_t start = chunk * len, end = start + len < hw ? start + len : hw;
  const float* pk = probs + int64_t(plane) * hw;
  const int32_t* t = target + int64_t(img) * hw;
  float a = 0.f, s = 0.f;
  int y = 0;
  int64_t bad = INT64_MAX;
  for (int64_t p = start + threadIdx.x; p < end; p += kThreads) {
    const float v = pk[p];
    const int32_t tp = __ldg(t + p);
    s += v;
    if (tp == k) a += v, ++y;
    if (k == 0 && (tp < 0 || tp >= c) && bad == INT64_MAX) bad = int64_t(img) * hw + p;
  }
  const double wa = warp_sum(static_cast<double>(a)), ws = warp_sum(static_cast<double>(s));
  const int wy = warp_sum(y);
  const int64_t wb = warp_min(bad);
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  if (lane == 0) s_a[warp] = wa, s_s[warp] = ws, s_y[warp] = wy, s_bad[warp] = wb;
  __syncthreads();
  if (threadIdx.x == 0) {
    double ta = 0.0, ts = 0.0;
    int ty = 0;
    int64_t tb = INT64_MAX;
    for (int i = 0; i < kThreads / 32; ++i) {
      ta += s_a[i], ts += s_s[i], ty += s_y[i];
      tb = s_bad[i] < tb ? s_bad[i] : tb;
    }
    double* q = part + ((int64_t(k) * n + img) * chunks + chunk) * 3;
    q[0] = ta, q[1] = ts, q[2] = static_cast<double>(ty);
    if (k == 0) bad_part[int64_t(img) * chunks + chunk] = tb;
  }
}

// One block: the final pass (loss_reduce.cuh) over the n*chunks partials of each class.
__global__ void __launch_bounds__(kFinalThreads)
    tversky_final_kernel(double alpha_min, double alpha_max, double eps, int n, int c, int chunks,
                         const double* __restrict__ part, const int64_t* __restrict__ bad_part,
                         double* __restrict__ cls, const int32_t* __restrict__ target, float* __restrict__ loss,
                         float* __restrict__ stats, LabelError* __restrict__ error) {
  loss_detail::tversky_final<kFinalThreads>(alpha_min, alpha_max, eps, c, n * chunks, part, bad_part, cls, target, loss,
                                            stats, error);
}

// Grid (planes, chunks): thread 0 derives the class's g_y / g_n (double, as
// the CPU kernel), then every thread adds them over its pixels.
// Six blocks of 256 (at most 42 registers): without the minimum, ptxas (CUDA 13, sm_90)
// holds it to 32-40 registers and spills 4-8 bytes (docs/ptxas.md).
__global__ void __launch_bounds__(kThreads, 6)
    tversky_bwd_kernel(double alpha_min, double alpha_max, double eps, bool detach_alpha, int c, int64_t hw,
                       int64_t len, const float* __restrict__ dloss, const int32_t* __restrict__ target,
                       const float* __restrict__ stats, float* __restrict__ dprobs, bool accumulate) {
  LK_SHARED(float, s_g, [2]);
  const int plane = static_cast<int>(blockIdx.x), img = plane / c, k = plane - img * c;
  if (threadIdx.x == 0)
    loss_detail::tversky_class_grad(stats[k], stats[c + k], stats[2 * c + k], stats[3 * c + k], dloss[0], c, alpha_min,
                                    alpha_max, eps, detach_alpha, s_g[0], s_g[1]);
  __syncthreads();
  const float gy = s_g[0], gn = s_g[1];
  const int64_t start = int64_t(blockIdx.y) * len, end = start + len < hw ? start + len : hw;
  float* d = dprobs + int64_t(plane) * hw;
  const int32_t* t = target + int64_t(img) * hw;
  for (int64_t p = start + threadIdx.x; p < end; p += kThreads) lk_put_grad(d[p], __ldg(t + p) == k ? gy : gn, accumulate);
}

bool bad_sizes(int64_t n, int64_t c, int64_t hw) {
  return n < 0 || hw < 0 || c <= 0 || n > INT_MAX || c > INT_MAX || n * c > INT_MAX ||
         n * int64_t(chunk_count(hw)) * 3 > INT_MAX;
}

}  // namespace

size_t tversky_workspace_bytes(int64_t n, int64_t c, int64_t hw) { return layout(n, c, hw).total; }

cudaError_t tversky_fwd(const TverskyParams& tp, int64_t n, int64_t c, int64_t hw, const float* probs,
                        const int32_t* target, float* loss, float* stats, LabelError* error, void* workspace,
                        size_t workspace_bytes, cudaStream_t stream) {
  if (bad_sizes(n, c, hw) || !loss || !stats || !workspace) return cudaErrorInvalidValue;
  const Layout l = layout(n, c, hw);
  if (workspace_bytes < l.total || reinterpret_cast<uintptr_t>(workspace) % 8 != 0) return cudaErrorInvalidValue;
  char* ws = static_cast<char*>(workspace);
  auto* part = reinterpret_cast<double*>(ws + l.part);
  auto* bad_part = reinterpret_cast<int64_t*>(ws + l.bad);
  auto* cls = reinterpret_cast<double*>(ws + l.cls);
  const int chunks = chunk_count(hw);
  // No pixel: every count is 0 and the partials must still be written.
  if (n > 0) {
    const cudaError_t e = LK_LAUNCH(tversky_count_kernel, dim3(static_cast<unsigned>(n * c), chunks), kThreads, 0,
                                    stream)(static_cast<int>(n), static_cast<int>(c), hw, chunk_len(hw, chunks), probs,
                                            target, part, bad_part);
    if (e != cudaSuccess) return e;
  }
  return LK_LAUNCH(tversky_final_kernel, 1, kFinalThreads, 0, stream)(
      tp.alpha_min, tp.alpha_max, tp.eps, static_cast<int>(n), static_cast<int>(c), chunks, part, bad_part, cls, target,
      loss, stats, error);
}

cudaError_t tversky_fwd_checked(const TverskyParams& tp, int64_t n, int64_t c, int64_t hw, const float* probs,
                                const int32_t* target, float* loss, float* stats, int64_t* first_bad,
                                void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (bad_sizes(n, c, hw) || !workspace || workspace_bytes < layout(n, c, hw).total) return cudaErrorInvalidValue;
  auto* slot = reinterpret_cast<LabelError*>(static_cast<char*>(workspace) + layout(n, c, hw).slot);
  cudaError_t e = cudaMemsetAsync(slot, 0xFF, sizeof(LabelError), stream);  // no error recorded
  if (e == cudaSuccess) e = tversky_fwd(tp, n, c, hw, probs, target, loss, stats, slot, workspace, workspace_bytes, stream);
  if (e != cudaSuccess) return e;
  LabelError bad{-1, -1};
  e = cudaMemcpyAsync(&bad, slot, sizeof(bad), cudaMemcpyDeviceToHost, stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess) return e;
  if (first_bad) *first_bad = bad.index;
  return bad.index >= 0 ? kErrorBadLabel : cudaSuccess;
}

cudaError_t tversky_bwd(const TverskyParams& tp, int64_t n, int64_t c, int64_t hw, const float* dloss,
                        const int32_t* target, const float* stats, float* dprobs, cudaStream_t stream,
                        bool accumulate) {
  if (bad_sizes(n, c, hw) || !dloss || !stats) return cudaErrorInvalidValue;
  if (n == 0 || hw == 0) return cudaSuccess;
  const int chunks = chunk_count(hw);
  return LK_LAUNCH(tversky_bwd_kernel, dim3(static_cast<unsigned>(n * c), chunks), kThreads, 0, stream)(
      tp.alpha_min, tp.alpha_max, tp.eps, tp.detach_alpha, static_cast<int>(c), hw, chunk_len(hw, chunks), dloss,
      target, stats, dprobs, accumulate);
}

LK_CUDA_NAMESPACE_END
