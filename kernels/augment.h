// Online training augmentation (SPEC.md, "Augmentation (paper Table 1)"):
// Gaussian noise, additive brightness, gamma, scaling + rotation, and the
// always-on 128x128 crop of the reflect-padded slice. The CPU path is
// augment_cpu below; the GPU path (kernels/cuda/augment.h) runs one fused
// kernel per batch. Both take the same AugmentDraw and share the per-pixel
// helpers of this header, so they agree (images to float rounding, labels
// exactly).
//
// Randomness: Philox-4x32-10 (kernels/philox.h), key = the 64-bit seed,
// counter = (block, slice, epoch, stream). draw_augmentation uses stream 0
// (blocks 0..4) for the decisions and parameters, which are all drawn
// whether or not their transform applies; the Gaussian noise uses stream 1
// with block = the output element index c*O*O + y*O + x (Box-Muller, cosine
// branch), so it does not depend on the order pixels are visited in.
//
// What one output element is, in order:
//  1. spatial: output pixel (y, x) lies at (y + oy, x + ox) of the slice
//     reflect-padded by `pad` (the crop offset (oy, ox) is uniform over
//     [0, S + 2 pad - O]); that is pixel r = reflect(y + oy - pad) of the
//     warped slice. With scaling s or rotation t the warped slice at r is the
//     source slice at q = c + R(-t) (r - c) / s, c = (S - 1) / 2 (the centre),
//     sampled bilinearly (images) or by nearest (labels, round half up), with
//     reflect indexing outside the slice. Reflect is "reflect" without edge
//     repetition (-1 -> 1), repeated periodically for far coordinates.
//     s in U[0.85, 1.15] (a zoom: s > 1 magnifies), t in U[-15, 15] degrees,
//     each applied with p 0.2 independently; one warp when both apply.
//  2. brightness (p 0.15): + b_c, b_c ~ N(0, 0.3) per channel.
//  3. gamma (p 0.3), per channel gamma_c ~ U[0.7, 1.5]: with v the spatial
//     output of the channel (the whole O x O crop), min/max/mean/std its
//     statistics and t = (v - min) / (max - min), the result is
//     (t^g - mean(t^g)) / std(t^g) * std + mean: the min-max gamma of the
//     brief, rescaled so the channel keeps its mean and std (population std).
//     A shift before it (brightness) moves min, max and mean together and
//     leaves t unchanged, so it is computed as gamma of v, then + b_c.
//     Skipped for a channel that is constant (max == min) or whose t^g is.
//  4. noise (p 0.1): + N(0, 0.1^2) per element, drawn by element index.
// Labels only take step 1.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/philox.h"

#if defined(__CUDACC__)
#define LK_AUG_HD __host__ __device__ __forceinline__
#else
#define LK_AUG_HD inline
#endif

namespace lk::data {

inline constexpr int kAugChannels = 4;
inline constexpr int64_t kAugOut = 128;  // crop side
inline constexpr int64_t kAugPad = 16;   // 128 -> 160

inline constexpr double kAugPNoise = 0.1, kAugPBrightness = 0.15, kAugPGamma = 0.3, kAugPScale = 0.2,
                        kAugPRotate = 0.2;
inline constexpr float kAugNoiseSigma = 0.1f;
inline constexpr double kAugBrightnessSigma = 0.3, kAugGammaLo = 0.7, kAugGammaHi = 1.5, kAugScaleRange = 0.15,
                        kAugRotateDeg = 15.0;

// One slice's transforms and parameters (trivially copyable: the GPU path
// takes a device array of them). Build with draw_augmentation, or by hand
// then set_warp() (tests).
struct AugmentDraw {
  uint64_t seed = 0;  // the key of the per-pixel noise
  uint32_t epoch = 0;
  uint32_t slice = 0;
  bool noise = false, brightness = false, gamma = false, scale = false, rotate = false;
  float noise_sigma = kAugNoiseSigma;
  float brightness_shift[kAugChannels] = {0.f, 0.f, 0.f, 0.f};
  float gamma_value[kAugChannels] = {1.f, 1.f, 1.f, 1.f};
  float scale_factor = 1.f;   // s
  float angle_rad = 0.f;      // t
  float warp_a = 1.f;         // cos(t) / s of the applied warp (set_warp)
  float warp_b = 0.f;         // sin(t) / s
  uint32_t crop_ry = 0, crop_rx = 0;  // raw words; the offset is raw % (range + 1)
  LK_AUG_HD bool warp() const { return scale || rotate; }
};

// The decisions and parameters for (seed, epoch, slice); identical on every
// call and machine. The slice index is taken modulo 2^32.
AugmentDraw draw_augmentation(uint64_t seed, uint32_t epoch, int64_t slice);
// AugmentDraw travels to the device as int32 words (a (B, kAugDrawWords)
// tensor; Backend::augment): bytes copied as they are.
static_assert(std::is_trivially_copyable_v<AugmentDraw> && sizeof(AugmentDraw) % sizeof(int32_t) == 0);
inline constexpr int64_t kAugDrawWords = static_cast<int64_t>(sizeof(AugmentDraw) / sizeof(int32_t));
inline void pack_augment_draws(const AugmentDraw* draws, int64_t n, int32_t* words) {
  std::memcpy(words, draws, static_cast<size_t>(n) * sizeof(AugmentDraw));
}
inline void unpack_augment_draws(const int32_t* words, int64_t n, AugmentDraw* draws) {
  std::memcpy(static_cast<void*>(draws), words, static_cast<size_t>(n) * sizeof(AugmentDraw));
}

// warp_a / warp_b from scale / rotate / scale_factor / angle_rad.
void set_warp(AugmentDraw& d);

// img (4, S, S), lab (S, S) -> out_img (4, O, O), out_lab (O, O), O = out_side.
// Needs out_side <= S + 2 pad, S >= 1; lab / out_lab may both be null.
void augment_cpu(const AugmentDraw& d, const float* img, const int32_t* lab, int64_t S_in, float* out_img,
                 int32_t* out_lab, int64_t out_side = kAugOut, int64_t pad = kAugPad);

// ---------------------------------------------------------------------------
// Per-pixel helpers shared by augment_cpu and kernels/cuda/augment.cu. They
// use explicit fmaf so the GPU (which would contract a*b+c) and the CPU round
// identically.

// Reflect without edge repetition, periodic: n = 4: ..., 2, 1, [0, 1, 2, 3], 2, 1, 0, 1, ...
LK_AUG_HD int aug_reflect(int i, int n) {
  if (n <= 1) return 0;
  const int p = 2 * (n - 1);
  i %= p;
  if (i < 0) i += p;
  return i >= n ? p - i : i;
}

LK_AUG_HD int aug_crop_offset(uint32_t raw, int S, int pad, int out) {
  return static_cast<int>(raw % static_cast<uint32_t>(S + 2 * pad - out + 1));
}

// Source coordinates (qy, qx) in the slice of warped-slice pixel (ry, rx).
LK_AUG_HD void aug_source(const AugmentDraw& d, int S, int ry, int rx, float& qy, float& qx) {
  const float c = 0.5f * static_cast<float>(S - 1);
  const float dy = static_cast<float>(ry) - c, dx = static_cast<float>(rx) - c;  // exact
  qx = fmaf(d.warp_a, dx, fmaf(d.warp_b, dy, c));
  qy = fmaf(d.warp_a, dy, fmaf(-d.warp_b, dx, c));
}

LK_AUG_HD float aug_bilinear(const float* plane, int S, float qy, float qx) {
  const float fy = floorf(qy), fx = floorf(qx);
  const float ty = qy - fy, tx = qx - fx;
  const int y0 = static_cast<int>(fy), x0 = static_cast<int>(fx);
  const int ya = aug_reflect(y0, S), yb = aug_reflect(y0 + 1, S);
  const int xa = aug_reflect(x0, S), xb = aug_reflect(x0 + 1, S);
  const float a = plane[ya * S + xa], b = plane[ya * S + xb];
  const float c = plane[yb * S + xa], e = plane[yb * S + xb];
  const float top = fmaf(tx, b - a, a), bot = fmaf(tx, e - c, c);
  return fmaf(ty, bot - top, top);
}

LK_AUG_HD int32_t aug_nearest(const int32_t* plane, int S, float qy, float qx) {
  const int y = aug_reflect(static_cast<int>(floorf(qy + 0.5f)), S);
  const int x = aug_reflect(static_cast<int>(floorf(qx + 0.5f)), S);
  return plane[y * S + x];
}

// The spatial step for output pixel (y, x): the warped-slice pixel it shows.
LK_AUG_HD void aug_crop_source(int y, int x, int oy, int ox, int pad, int S, int& ry, int& rx) {
  ry = aug_reflect(y + oy - pad, S);
  rx = aug_reflect(x + ox - pad, S);
}

LK_AUG_HD float aug_noise(const AugmentDraw& d, uint32_t element) {
  const Philox4x32 r = philox4x32_10(element, d.slice, d.epoch, 1u, static_cast<uint32_t>(d.seed),
                                     static_cast<uint32_t>(d.seed >> 32));
  const float u1 = philox_uniform01_open0(r.v[0]), u2 = philox_uniform01(r.v[1]);
  return d.noise_sigma * (sqrtf(-2.f * logf(u1)) * cosf(6.28318530717958648f * u2));
}

// Gamma with retained statistics (step 3), from the channel statistics.
struct AugGamma {
  bool apply = false;
  float mn = 0.f, inv_range = 0.f, gamma = 1.f, mean_g = 0.f, ratio = 0.f, mean = 0.f;
};

// From double statistics of v (min, max, sum, sum of squares over n) and,
// for the second pass, of t^g (sum_g, sumsq_g). Pass 1 fills mn / inv_range.
LK_AUG_HD AugGamma aug_gamma_pass1(float mn, float mx, float g) {
  AugGamma r;
  r.gamma = g;
  r.mn = mn;
  r.apply = mx > mn;
  r.inv_range = r.apply ? static_cast<float>(1.0 / (static_cast<double>(mx) - static_cast<double>(mn))) : 0.f;
  return r;
}
LK_AUG_HD float aug_gamma_t(const AugGamma& g, float v) {
  float t = (v - g.mn) * g.inv_range;
  t = t < 0.f ? 0.f : (t > 1.f ? 1.f : t);
  return powf(t, g.gamma);
}
LK_AUG_HD void aug_gamma_pass2(AugGamma& g, double n, double sum, double sumsq, double sum_g, double sumsq_g) {
  const double mean = sum / n, mean_g = sum_g / n;
  const double var = sumsq / n - mean * mean, var_g = sumsq_g / n - mean_g * mean_g;
  const double sd = var > 0 ? sqrt(var) : 0.0, sd_g = var_g > 0 ? sqrt(var_g) : 0.0;
  if (!(sd_g > 1e-12)) {
    g.apply = false;
    return;
  }
  g.mean = static_cast<float>(mean);
  g.mean_g = static_cast<float>(mean_g);
  g.ratio = static_cast<float>(sd / sd_g);
}
LK_AUG_HD float aug_gamma_apply(const AugGamma& g, float v) {
  return fmaf(aug_gamma_t(g, v) - g.mean_g, g.ratio, g.mean);
}

// Steps 2-4 after the optional gamma: + brightness (shift = brightness_shift[c]), + noise.
LK_AUG_HD float aug_intensity_tail(const AugmentDraw& d, float shift, uint32_t element, float v) {
  if (d.brightness) v = v + shift;
  if (d.noise) v = v + aug_noise(d, element);
  return v;
}

}  // namespace lk::data
