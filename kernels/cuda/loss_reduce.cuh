// Device pieces the loss kernels share (cross_entropy.cu, tversky.cu and
// loss_terms.cu, which fuses the two): the per-pixel softmax statistics, the
// cross-entropy's block partial and final pass, and the Tversky final pass
// from per-class soft counts. Every reduction is in a fixed order (double):
// the losses are bitwise reproducible run to run.
#pragma once

#include <climits>
#include <cstdint>

#include "kernels/cuda/cross_entropy.h"  // LabelError
#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/warp_reduce.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace loss_detail {

// One block's share of the cross-entropy: sum w*(-log p), sum w, first bad
// label index (INT64_MAX: none).
struct CrossEntropyPartial {
  double num, den;
  int64_t bad;
};

// Max over the pixel's channels and sum of exp(z - max), in channel order as
// the CPU kernel computes them.
__device__ __forceinline__ void pixel_max_sum(const float* __restrict__ z, int64_t hw, int c, float& mx, float& s) {
  mx = z[0];
  for (int k = 1; k < c; ++k) mx = fmaxf(mx, z[k * hw]);
  s = 0.f;
  for (int k = 0; k < c; ++k) s += expf(z[k * hw] - mx);
}

// One pixel's cross-entropy term: adds w*(-log p_t) to num and w to den, or,
// for a label outside [0, c), records its index i in bad (the first one wins).
__device__ __forceinline__ void ce_pixel(const float* __restrict__ z, int64_t hw, int c, int t, float mx, float s,
                                         const float* __restrict__ weight, int64_t i, double& num, double& den,
                                         int64_t& bad) {
  if (t < 0 || t >= c) {
    bad = i < bad ? i : bad;
    return;
  }
  const double logp = static_cast<double>(z[t * hw] - mx - logf(s));
  const double w = weight ? static_cast<double>(__ldg(weight + t)) : 1.0;
  num += -w * logp;
  den += w;
}

// Block-wide (num, den, bad) reduction in a fixed order; thread 0 gets the
// result. Every thread of the block (a multiple of 32, at most 32 warps) must call it.
__device__ inline CrossEntropyPartial ce_block_reduce(double num, double den, int64_t bad) {
  LK_SHARED(double, s_num, [32]);
  LK_SHARED(double, s_den, [32]);
  LK_SHARED(int64_t, s_bad, [32]);
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  num = warp_sum(num);
  den = warp_sum(den);
  bad = warp_min(bad);
  if (lane == 0) s_num[warp] = num, s_den[warp] = den, s_bad[warp] = bad;
  __syncthreads();
  CrossEntropyPartial r{0.0, 0.0, INT64_MAX};
  if (threadIdx.x == 0) {
    const int warps = static_cast<int>(blockDim.x) >> 5;
    for (int i = 0; i < warps; ++i) {
      r.num += s_num[i];
      r.den += s_den[i];
      r.bad = s_bad[i] < r.bad ? s_bad[i] : r.bad;
    }
  }
  __syncthreads();  // the shared arrays may be used again right away
  return r;
}

// The cross-entropy's final pass, in one block: the partials in a fixed order
// (thread i takes i, i + blockDim, ...). loss = num / den and wsum = den, both
// NaN with a bad label, which `error` records if it holds none yet.
__device__ inline void ce_final(const CrossEntropyPartial* __restrict__ partials, int count,
                                const int32_t* __restrict__ target, float* __restrict__ loss,
                                float* __restrict__ wsum, LabelError* __restrict__ error) {
  double num = 0.0, den = 0.0;
  int64_t bad = INT64_MAX;
  for (int i = static_cast<int>(threadIdx.x); i < count; i += static_cast<int>(blockDim.x)) {
    num += partials[i].num;
    den += partials[i].den;
    bad = partials[i].bad < bad ? partials[i].bad : bad;
  }
  const CrossEntropyPartial r = ce_block_reduce(num, den, bad);
  if (threadIdx.x == 0) {
    const bool ok = r.bad == INT64_MAX;
    loss[0] = ok ? static_cast<float>(r.num / r.den) : __int_as_float(0x7fc00000);
    wsum[0] = ok ? static_cast<float>(r.den) : __int_as_float(0x7fc00000);
    if (!ok && error && error->index < 0) error->index = r.bad, error->label = target[r.bad];
  }
}

// The Tversky final pass, in one block of kThreads: part holds, per class k
// and partial j < per_class, (TP part, sum of p, count of t == k) at
// part[(k * per_class + j) * 3]; bad_part (may be null) per partial the first
// bad label index. Warp w adds classes w, w + kThreads/32, ... in a fixed
// shuffle tree into cls[3k..3k+2]; thread k derives FP, FN, alpha, stats and
// the ratio (apart from the shuffles: the double divisions' slow paths then
// have little live across them); thread 0 adds the ratios in class order.
template <int kThreads>
__device__ inline void tversky_final(double alpha_min, double alpha_max, double eps, int c, int per_class,
                                     const double* __restrict__ part, const int64_t* __restrict__ bad_part,
                                     double* __restrict__ cls, const int32_t* __restrict__ target,
                                     float* __restrict__ loss, float* __restrict__ stats,
                                     LabelError* __restrict__ error) {
  LK_SHARED(int64_t, s_bad, [kThreads / 32]);
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  for (int k = warp; k < c; k += kThreads / 32) {
    const double* q = part + int64_t(k) * per_class * 3;
    double tp = 0.0, sp = 0.0, sy = 0.0;
    for (int j = lane; j < per_class; j += 32) tp += q[3 * j], sp += q[3 * j + 1], sy += q[3 * j + 2];
    tp = warp_sum(tp), sp = warp_sum(sp), sy = warp_sum(sy);
    if (lane == 0) cls[3 * k] = tp, cls[3 * k + 1] = sp, cls[3 * k + 2] = sy;
  }
  int64_t bad = INT64_MAX;
  if (bad_part)
    for (int j = static_cast<int>(threadIdx.x); j < per_class; j += kThreads) bad = bad_part[j] < bad ? bad_part[j] : bad;
  bad = warp_min(bad);
  if (lane == 0) s_bad[warp] = bad;
  __syncthreads();
  for (int k = static_cast<int>(threadIdx.x); k < c; k += kThreads) {
    const double tp = cls[3 * k], fp = cls[3 * k + 1] - tp, fn = cls[3 * k + 2] - tp;
    double alpha = 0.5;
    if (fp + fn > 0) {
      const double raw = fp / (fp + fn);
      alpha = raw < alpha_min ? alpha_min : (alpha_max < raw ? alpha_max : raw);
    }
    stats[k] = static_cast<float>(tp);
    stats[c + k] = static_cast<float>(fp);
    stats[2 * c + k] = static_cast<float>(fn);
    stats[3 * c + k] = static_cast<float>(alpha);
    cls[3 * k] = tp / (tp + alpha * fp + (1 - alpha) * fn + eps);
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 0; i < kThreads / 32; ++i) bad = s_bad[i] < bad ? s_bad[i] : bad;
    double sum_ratio = 0.0;
    for (int k = 0; k < c; ++k) sum_ratio += cls[3 * k];
    const bool ok = bad == INT64_MAX;
    loss[0] = ok ? static_cast<float>(1.0 - sum_ratio / static_cast<double>(c)) : __int_as_float(0x7fc00000);
    if (!ok && error && error->index < 0) error->index = bad, error->label = target[bad];
  }
}

// The Tversky gradient per pixel of class k, from the stats (TP, FP, FN,
// alpha) and dloss (double, as the CPU kernel): gy for pixels of the class,
// gn for the others. Without detach_alpha, alpha moves with p where the clamp
// is inactive.
__device__ inline void tversky_class_grad(double tp, double fp, double fn, double alpha, double dloss, int c,
                                          double alpha_min, double alpha_max, double eps, bool detach_alpha,
                                          float& gy, float& gn) {
  const double d = tp + alpha * fp + (1 - alpha) * fn + eps;
  const double s = -dloss / static_cast<double>(c) / (d * d);
  double da_y = 0.0, da_n = 0.0;
  const double den = fp + fn;
  if (!detach_alpha && den > 0) {
    const double raw = fp / den;
    if (raw > alpha_min && raw < alpha_max) {
      da_y = fp / (den * den);
      da_n = fn / (den * den);
    }
  }
  gy = static_cast<float>(s * (d - tp * (alpha + (fp - fn) * da_y)));
  gn = static_cast<float>(s * (-tp * (alpha + (fp - fn) * da_n)));
}

}  // namespace loss_detail
LK_CUDA_NAMESPACE_END
