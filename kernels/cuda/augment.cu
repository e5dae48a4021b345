// Training augmentation, one fused kernel per batch. Block (c, b) with c < 4
// makes channel c of slice b: spatial pass (crop of the reflect-padded, warped
// slice) into the output, then, when gamma applies, two block reductions
// (min / max / sum / sum of squares of the channel, then sum / sum of squares
// of t^g) and the final pass (gamma, brightness, noise) over the values it
// wrote itself. Block (4, b) makes the label plane. Everything per pixel is
// the shared code of kernels/augment.h, so this matches augment_cpu.
#include "kernels/cuda/augment.h"
#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/warp_reduce.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

using data::AugGamma;
using data::AugmentDraw;
constexpr int kWarps = kAugmentThreads / 32;

struct Params {
  int S, O, P;
};

// Block-wide sums of (a, b) in double and min / max of (mn, mx); every thread
// gets the result. Contains __syncthreads (call from all threads).
__device__ void block_reduce(double& a, double& b, float& mn, float& mx, double (*sd)[kWarps],
                             float (*sf)[kWarps]) {
  a = warp_sum(a);
  b = warp_sum(b);
  mn = warp_min(mn);
  mx = warp_max(mx);
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  __syncthreads();  // the arrays may still be read from a previous call
  if (lane == 0) {
    sd[0][warp] = a;
    sd[1][warp] = b;
    sf[0][warp] = mn;
    sf[1][warp] = mx;
  }
  __syncthreads();
  a = sd[0][0];
  b = sd[1][0];
  mn = sf[0][0];
  mx = sf[1][0];
  for (int w = 1; w < kWarps; ++w) {
    a += sd[0][w];
    b += sd[1][w];
    mn = fminf(mn, sf[0][w]);
    mx = fmaxf(mx, sf[1][w]);
  }
}

__global__ void __launch_bounds__(kAugmentThreads)
    augment_kernel(const AugmentDraw* __restrict__ draws, const float* __restrict__ img,
                   const int32_t* __restrict__ lab, float* __restrict__ out_img, int32_t* __restrict__ out_lab,
                   Params p) {
  LK_SHARED(double, red_d, [2][kWarps]);
  LK_SHARED(float, red_f, [2][kWarps]);
  const int c = static_cast<int>(blockIdx.x), b = static_cast<int>(blockIdx.y);
  const AugmentDraw& d = draws[b];  // read in place: a local copy would go to the stack
  const int S = p.S, O = p.O, n = O * O;
  const int oy = data::aug_crop_offset(d.crop_ry, S, p.P, O), ox = data::aug_crop_offset(d.crop_rx, S, p.P, O);
  const bool warp = d.warp();

  if (c == data::kAugChannels) {  // labels
    if (!lab || !out_lab) return;
    const int32_t* src = lab + static_cast<int64_t>(b) * S * S;
    int32_t* dst = out_lab + static_cast<int64_t>(b) * n;
    for (int i = static_cast<int>(threadIdx.x); i < n; i += kAugmentThreads) {
      int ry, rx;
      data::aug_crop_source(i / O, i % O, oy, ox, p.P, S, ry, rx);
      int32_t l;
      if (warp) {
        float qy, qx;
        data::aug_source(d, S, ry, rx, qy, qx);
        l = data::aug_nearest(src, S, qy, qx);
      } else {
        l = src[ry * S + rx];
      }
      dst[i] = l;
    }
    return;
  }

  const float* src = img + (static_cast<int64_t>(b) * data::kAugChannels + c) * S * S;
  float* dst = out_img + (static_cast<int64_t>(b) * data::kAugChannels + c) * n;
  const bool gamma = d.gamma;
  const float shift = d.brightness_shift[c], gamma_c = d.gamma_value[c];
  double sum = 0, sumsq = 0;
  float mn = INFINITY, mx = -INFINITY;
  // 1. spatial (and, without gamma, the whole chain)
  for (int i = static_cast<int>(threadIdx.x); i < n; i += kAugmentThreads) {
    int ry, rx;
    data::aug_crop_source(i / O, i % O, oy, ox, p.P, S, ry, rx);
    float v;
    if (warp) {
      float qy, qx;
      data::aug_source(d, S, ry, rx, qy, qx);
      v = data::aug_bilinear(src, S, qy, qx);
    } else {
      v = src[ry * S + rx];
    }
    if (gamma) {
      mn = fminf(mn, v);
      mx = fmaxf(mx, v);
      sum += v;
      sumsq += static_cast<double>(v) * v;
      dst[i] = v;
    } else {
      dst[i] = data::aug_intensity_tail(d, shift, static_cast<uint32_t>(c * n + i), v);
    }
  }
  if (!gamma) return;  // uniform over the block

  block_reduce(sum, sumsq, mn, mx, red_d, red_f);
  AugGamma g = data::aug_gamma_pass1(mn, mx, gamma_c);
  if (g.apply) {  // uniform over the block
    double sum_g = 0, sumsq_g = 0;
    float unused0 = 0.f, unused1 = 0.f;
    for (int i = static_cast<int>(threadIdx.x); i < n; i += kAugmentThreads) {
      const double t = data::aug_gamma_t(g, dst[i]);
      sum_g += t;
      sumsq_g += t * t;
    }
    block_reduce(sum_g, sumsq_g, unused0, unused1, red_d, red_f);
    data::aug_gamma_pass2(g, static_cast<double>(n), sum, sumsq, sum_g, sumsq_g);
  }
  for (int i = static_cast<int>(threadIdx.x); i < n; i += kAugmentThreads) {
    float v = dst[i];
    if (g.apply) v = data::aug_gamma_apply(g, v);
    dst[i] = data::aug_intensity_tail(d, shift, static_cast<uint32_t>(c * n + i), v);
  }
}

}  // namespace

cudaError_t augment_batch(const data::AugmentDraw* draws, int64_t batch, const float* img, const int32_t* lab,
                          int64_t S_in, float* out_img, int32_t* out_lab, int64_t out_side, int64_t pad,
                          cudaStream_t stream) {
  if (batch < 0 || S_in < 1 || out_side < 1 || pad < 0 || out_side > S_in + 2 * pad || S_in > (1 << 15) ||
      pad > (1 << 15) || batch > 65535)
    return cudaErrorInvalidValue;
  if (batch == 0) return cudaSuccess;
  const Params p{static_cast<int>(S_in), static_cast<int>(out_side), static_cast<int>(pad)};
  const dim3 grid(data::kAugChannels + 1, static_cast<unsigned>(batch));
  return LK_LAUNCH(augment_kernel, grid, kAugmentThreads, 0, stream)(draws, img, lab, out_img, out_lab, p);
}

LK_CUDA_NAMESPACE_END
