#include "kernels/augment.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

namespace lk::data {
namespace {

// Word w of Philox block `block` of stream 0 for this key, as a double in [0, 1).
struct DrawStream {
  uint64_t seed;
  uint32_t epoch, slice;
  Philox4x32 block(uint32_t b) const {
    return philox4x32_10(b, slice, epoch, 0u, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  }
};
double u01(uint32_t w) { return static_cast<double>(w) * (1.0 / 4294967296.0); }
// Box-Muller (both branches) from two words.
void normal_pair(uint32_t w0, uint32_t w1, double& z0, double& z1) {
  const double u1 = (static_cast<double>(w0) + 1.0) * (1.0 / 4294967296.0);  // (0, 1]
  const double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * std::numbers::pi * u01(w1);
  z0 = r * std::cos(a);
  z1 = r * std::sin(a);
}

}  // namespace

void set_warp(AugmentDraw& d) {
  const double s = d.scale ? static_cast<double>(d.scale_factor) : 1.0;
  const double t = d.rotate ? static_cast<double>(d.angle_rad) : 0.0;
  d.warp_a = static_cast<float>(std::cos(t) / s);
  d.warp_b = static_cast<float>(std::sin(t) / s);
}

AugmentDraw draw_augmentation(uint64_t seed, uint32_t epoch, int64_t slice) {
  AugmentDraw d;
  d.seed = seed;
  d.epoch = epoch;
  d.slice = static_cast<uint32_t>(slice);
  const DrawStream st{seed, epoch, d.slice};
  // Block 0: the five decisions (4 words) ...
  const Philox4x32 b0 = st.block(0), b1 = st.block(1), b2 = st.block(2), b3 = st.block(3);
  d.noise = u01(b0.v[0]) < kAugPNoise;
  d.brightness = u01(b0.v[1]) < kAugPBrightness;
  d.gamma = u01(b0.v[2]) < kAugPGamma;
  d.scale = u01(b0.v[3]) < kAugPScale;
  // Block 1: rotation decision, scale, angle, crop row.
  d.rotate = u01(b1.v[0]) < kAugPRotate;
  d.scale_factor = static_cast<float>(1.0 + kAugScaleRange * (2.0 * u01(b1.v[1]) - 1.0));
  d.angle_rad = static_cast<float>(kAugRotateDeg * (std::numbers::pi / 180.0) * (2.0 * u01(b1.v[2]) - 1.0));
  d.crop_ry = b1.v[3];
  // Block 2: crop column, and the gamma of channels 0..2; block 3: gamma of
  // channel 3, brightness shifts of channels 0..1 (a Box-Muller pair) and
  // block 4 channels 2..3.
  d.crop_rx = b2.v[0];
  for (int c = 0; c < 3; ++c)
    d.gamma_value[c] = static_cast<float>(kAugGammaLo + (kAugGammaHi - kAugGammaLo) * u01(b2.v[c + 1]));
  d.gamma_value[3] = static_cast<float>(kAugGammaLo + (kAugGammaHi - kAugGammaLo) * u01(b3.v[0]));
  double z[4];
  normal_pair(b3.v[1], b3.v[2], z[0], z[1]);
  const Philox4x32 b4 = st.block(4);
  normal_pair(b4.v[0], b4.v[1], z[2], z[3]);
  for (int c = 0; c < kAugChannels; ++c) d.brightness_shift[c] = static_cast<float>(kAugBrightnessSigma * z[c]);
  set_warp(d);
  return d;
}

void augment_cpu(const AugmentDraw& d, const float* img, const int32_t* lab, int64_t S_in, float* out_img,
                 int32_t* out_lab, int64_t out_side, int64_t pad) {
  if (S_in < 1 || out_side < 1 || pad < 0 || out_side > S_in + 2 * pad || S_in > (1 << 15) || pad > (1 << 15))
    throw std::invalid_argument("augment_cpu: bad sizes S " + std::to_string(S_in) + " out " +
                                std::to_string(out_side) + " pad " + std::to_string(pad));
  const int S = static_cast<int>(S_in), O = static_cast<int>(out_side), P = static_cast<int>(pad);
  const int oy = aug_crop_offset(d.crop_ry, S, P, O), ox = aug_crop_offset(d.crop_rx, S, P, O);
  const bool warp = d.warp();
  const int64_t plane_out = int64_t(O) * O;

  for (int c = 0; c < kAugChannels; ++c) {
    const float* src = img + int64_t(c) * S * S;
    float* dst = out_img + c * plane_out;
    // 1. spatial
    for (int y = 0; y < O; ++y)
      for (int x = 0; x < O; ++x) {
        int ry, rx;
        aug_crop_source(y, x, oy, ox, P, S, ry, rx);
        float v;
        if (warp) {
          float qy, qx;
          aug_source(d, S, ry, rx, qy, qx);
          v = aug_bilinear(src, S, qy, qx);
        } else {
          v = src[ry * S + rx];
        }
        dst[int64_t(y) * O + x] = v;
      }
    // 3. gamma statistics (two passes)
    AugGamma g;
    if (d.gamma) {
      float mn = dst[0], mx = dst[0];
      double sum = 0, sumsq = 0;
      for (int64_t i = 0; i < plane_out; ++i) {
        const float v = dst[i];
        mn = std::min(mn, v);
        mx = std::max(mx, v);
        sum += v;
        sumsq += double(v) * v;
      }
      g = aug_gamma_pass1(mn, mx, d.gamma_value[c]);
      if (g.apply) {
        double sum_g = 0, sumsq_g = 0;
        for (int64_t i = 0; i < plane_out; ++i) {
          const double t = aug_gamma_t(g, dst[i]);
          sum_g += t;
          sumsq_g += t * t;
        }
        aug_gamma_pass2(g, double(plane_out), sum, sumsq, sum_g, sumsq_g);
      }
    }
    // 2-4. gamma, brightness, noise
    for (int64_t i = 0; i < plane_out; ++i) {
      float v = dst[i];
      if (g.apply) v = aug_gamma_apply(g, v);
      dst[i] = aug_intensity_tail(d, d.brightness_shift[c], static_cast<uint32_t>(c * plane_out + i), v);
    }
  }

  if (lab && out_lab) {
    for (int y = 0; y < O; ++y)
      for (int x = 0; x < O; ++x) {
        int ry, rx;
        aug_crop_source(y, x, oy, ox, P, S, ry, rx);
        int32_t l;
        if (warp) {
          float qy, qx;
          aug_source(d, S, ry, rx, qy, qx);
          l = aug_nearest(lab, S, qy, qx);
        } else {
          l = lab[ry * S + rx];
        }
        out_lab[int64_t(y) * O + x] = l;
      }
  }
}

}  // namespace lk::data
