// Training augmentation (kernels/augment.h) and its Philox-4x32-10 generator
// (kernels/philox.h): known answers, determinism per key, decision
// frequencies, the crop-only identity, label sets, a known rotation, and the
// statistics gamma keeps.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <numbers>
#include <random>
#include <set>
#include <vector>

#include "kernels/augment.h"
#include "kernels/philox.h"

using namespace lk::data;

namespace {

constexpr int64_t kS = 128, kO = 128, kPad = 16;

std::vector<float> random_image(int64_t S, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(kAugChannels * S * S));
  for (float& x : v) x = n(rng);
  return v;
}
std::vector<int32_t> random_labels(int64_t S, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> v(static_cast<size_t>(S * S));
  for (int64_t y = 0; y < S; ++y)
    for (int64_t x = 0; x < S; ++x) v[y * S + x] = static_cast<int32_t>(((x / 7) + (y / 5) + rng() % 2) % 4);
  return v;
}

AugmentDraw only_crop(AugmentDraw d) {
  d.noise = d.brightness = d.gamma = d.scale = d.rotate = false;
  set_warp(d);
  return d;
}

// Independent reference of numpy's "reflect" padding for |i| < 2 S.
int64_t np_reflect(int64_t i, int64_t S) {
  if (i < 0) return -i;
  if (i >= S) return 2 * (S - 1) - i;
  return i;
}

bool same_draw(const AugmentDraw& a, const AugmentDraw& b) {  // field by field (padding bytes differ)
  bool same = a.seed == b.seed && a.epoch == b.epoch && a.slice == b.slice && a.noise == b.noise &&
              a.brightness == b.brightness && a.gamma == b.gamma && a.scale == b.scale && a.rotate == b.rotate &&
              a.noise_sigma == b.noise_sigma && a.scale_factor == b.scale_factor && a.angle_rad == b.angle_rad &&
              a.warp_a == b.warp_a && a.warp_b == b.warp_b && a.crop_ry == b.crop_ry && a.crop_rx == b.crop_rx;
  for (int c = 0; c < kAugChannels; ++c)
    same = same && a.brightness_shift[c] == b.brightness_shift[c] && a.gamma_value[c] == b.gamma_value[c];
  return same;
}

struct Out {
  std::vector<float> img;
  std::vector<int32_t> lab;
};
Out run(const AugmentDraw& d, const std::vector<float>& img, const std::vector<int32_t>& lab, int64_t S,
        int64_t O = kO, int64_t pad = kPad) {
  Out o{std::vector<float>(static_cast<size_t>(kAugChannels * O * O)),
        std::vector<int32_t>(static_cast<size_t>(O * O))};
  augment_cpu(d, img.data(), lab.data(), S, o.img.data(), o.lab.data(), O, pad);
  return o;
}

void mean_std(const float* p, int64_t n, double& mean, double& sd) {
  double s = 0, s2 = 0;
  for (int64_t i = 0; i < n; ++i) {
    s += p[i];
    s2 += double(p[i]) * p[i];
  }
  mean = s / n;
  sd = std::sqrt(std::max(0.0, s2 / n - mean * mean));
}

}  // namespace

TEST_CASE("Philox-4x32-10 known answers", "[data][augment]") {
  // The published known-answer vectors of Philox4x32-10.
  auto eq = [](lk::Philox4x32 r, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    CHECK(r.v[0] == a);
    CHECK(r.v[1] == b);
    CHECK(r.v[2] == c);
    CHECK(r.v[3] == d);
  };
  eq(lk::philox4x32_10(0, 0, 0, 0, 0, 0), 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u);
  eq(lk::philox4x32_10(~0u, ~0u, ~0u, ~0u, ~0u, ~0u), 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu);
  eq(lk::philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u), 0xd16cfe09u,
     0x94fdccebu, 0x5001e420u, 0x24126ea1u);
  CHECK(lk::philox_uniform01(~0u) < 1.f);
  CHECK(lk::philox_uniform01_open0(0u) > 0.f);
}

TEST_CASE("augmentation is deterministic per (seed, epoch, slice)", "[data][augment]") {
  const auto img = random_image(kS, 1);
  const auto lab = random_labels(kS, 2);
  int differ = 0;
  for (int64_t s = 0; s < 40; ++s) {
    const AugmentDraw a = draw_augmentation(7, 3, s), b = draw_augmentation(7, 3, s);
    CHECK(same_draw(a, b));
    AugmentDraw all = a;  // every transform on, so everything is exercised
    all.noise = all.brightness = all.gamma = all.scale = all.rotate = true;
    set_warp(all);
    const Out o1 = run(all, img, lab, kS), o2 = run(all, img, lab, kS);
    CHECK(std::memcmp(o1.img.data(), o2.img.data(), o1.img.size() * sizeof(float)) == 0);
    CHECK(o1.lab == o2.lab);
    const AugmentDraw e = draw_augmentation(7, 4, s), k = draw_augmentation(8, 3, s),
                      n = draw_augmentation(7, 3, s + 1);
    differ += (e.crop_ry != a.crop_ry) + (k.crop_ry != a.crop_ry) + (n.crop_ry != a.crop_ry);
  }
  CHECK(differ >= 3 * 40 - 3);  // another key gives another draw
}

TEST_CASE("decision frequencies and parameter ranges", "[data][augment]") {
  constexpr int N = 40000;
  int n_noise = 0, n_bright = 0, n_gamma = 0, n_scale = 0, n_rot = 0, n_both = 0;
  double bs = 0, bs2 = 0, gmin = 9, gmax = 0, smin = 9, smax = 0, amin = 9, amax = -9;
  std::vector<int> crop_hist(33, 0);
  for (int i = 0; i < N; ++i) {
    const AugmentDraw d = draw_augmentation(12345, static_cast<uint32_t>(i % 7), i);
    n_noise += d.noise;
    n_bright += d.brightness;
    n_gamma += d.gamma;
    n_scale += d.scale;
    n_rot += d.rotate;
    n_both += d.scale && d.rotate;
    for (int c = 0; c < kAugChannels; ++c) {
      bs += d.brightness_shift[c];
      bs2 += double(d.brightness_shift[c]) * d.brightness_shift[c];
      gmin = std::min<double>(gmin, d.gamma_value[c]);
      gmax = std::max<double>(gmax, d.gamma_value[c]);
    }
    smin = std::min<double>(smin, d.scale_factor);
    smax = std::max<double>(smax, d.scale_factor);
    amin = std::min<double>(amin, d.angle_rad);
    amax = std::max<double>(amax, d.angle_rad);
    crop_hist[aug_crop_offset(d.crop_ry, kS, kPad, kO)]++;
  }
  auto within = [](int count, double p) {  // 5 sigma of the binomial
    const double mu = N * p, sd = std::sqrt(N * p * (1 - p));
    INFO("count " << count << " expected " << mu);
    CHECK(std::fabs(count - mu) < 5 * sd);
  };
  within(n_noise, kAugPNoise);
  within(n_bright, kAugPBrightness);
  within(n_gamma, kAugPGamma);
  within(n_scale, kAugPScale);
  within(n_rot, kAugPRotate);
  within(n_both, kAugPScale * kAugPRotate);  // independent
  const double m = bs / (4.0 * N), sd = std::sqrt(bs2 / (4.0 * N) - m * m);
  CHECK(std::fabs(m) < 0.01);
  CHECK(std::fabs(sd - 0.3) < 0.01);
  CHECK(gmin >= 0.7);
  CHECK(gmax <= 1.5);
  CHECK(gmin < 0.71);
  CHECK(gmax > 1.49);
  CHECK(smin >= 0.85f);
  CHECK(smax <= 1.15f);
  CHECK(smin < 0.86);
  CHECK(smax > 1.14);
  const double lim = 15.0 * std::numbers::pi / 180.0;
  CHECK(amin >= -lim - 1e-6);
  CHECK(amax <= lim + 1e-6);
  CHECK(amin < -0.99 * lim);
  CHECK(amax > 0.99 * lim);
  for (int h : crop_hist) CHECK(std::fabs(h - N / 33.0) < 5 * std::sqrt(N / 33.0));  // every offset 0..32
}

TEST_CASE("per-pixel noise is N(0, 0.1^2) and keyed", "[data][augment]") {
  AugmentDraw d = draw_augmentation(3, 0, 9);
  double s = 0, s2 = 0;
  constexpr int N = 200000;
  for (uint32_t i = 0; i < N; ++i) {
    const double z = aug_noise(d, i);
    s += z;
    s2 += z * z;
  }
  const double m = s / N, sd = std::sqrt(s2 / N - m * m);
  CHECK(std::fabs(m) < 0.002);
  CHECK(std::fabs(sd - 0.1) < 0.002);
  AugmentDraw e = d;
  e.epoch = 1;
  CHECK(aug_noise(d, 5) == aug_noise(d, 5));
  CHECK(aug_noise(d, 5) != aug_noise(e, 5));
  CHECK(aug_noise(d, 5) != aug_noise(d, 6));
}

TEST_CASE("crop only: the window of the reflect-padded slice", "[data][augment]") {
  for (int64_t S : {128, 96, 40}) {
    const auto img = random_image(S, 11);
    const auto lab = random_labels(S, 12);
    const int64_t O = std::min<int64_t>(kO, S + 2 * kPad) - (S == 40 ? 10 : 0);
    for (int64_t s = 0; s < 25; ++s) {
      const AugmentDraw d = only_crop(draw_augmentation(99, 1, s));
      const int64_t oy = aug_crop_offset(d.crop_ry, int(S), int(kPad), int(O));
      const int64_t ox = aug_crop_offset(d.crop_rx, int(S), int(kPad), int(O));
      INFO("S " << S << " O " << O << " offset " << oy << "," << ox);
      CHECK(oy + O <= S + 2 * kPad);
      const Out o = run(d, img, lab, S, O, kPad);
      bool same = true;
      for (int c = 0; c < kAugChannels; ++c)
        for (int64_t y = 0; y < O; ++y)
          for (int64_t x = 0; x < O; ++x) {
            const int64_t sy = np_reflect(y + oy - kPad, S), sx = np_reflect(x + ox - kPad, S);
            same = same && o.img[(c * O + y) * O + x] == img[(c * S + sy) * S + sx];
            if (c == 0) same = same && o.lab[y * O + x] == lab[sy * S + sx];
          }
      CHECK(same);
    }
  }
}

TEST_CASE("labels stay in their set under every warp", "[data][augment]") {
  const auto img = random_image(kS, 21);
  const auto lab = random_labels(kS, 22);
  for (int64_t s = 0; s < 30; ++s) {
    AugmentDraw d = draw_augmentation(5, 2, s);
    d.scale = d.rotate = true;
    set_warp(d);
    const Out o = run(d, img, lab, kS);
    std::set<int32_t> seen(o.lab.begin(), o.lab.end());
    for (int32_t l : seen) CHECK((l >= 0 && l <= 3));
    CHECK(seen.size() >= 2);
  }
}

TEST_CASE("rotation by a known angle on synthetic patterns", "[data][augment]") {
  const int64_t S = kS;
  const double c = 0.5 * (S - 1);
  // A linear ramp: bilinear sampling is exact on it inside the slice.
  std::vector<float> img(static_cast<size_t>(kAugChannels * S * S));
  for (int ch = 0; ch < kAugChannels; ++ch)
    for (int64_t y = 0; y < S; ++y)
      for (int64_t x = 0; x < S; ++x) img[(ch * S + y) * S + x] = float(0.01 * x - 0.02 * y + ch);
  std::vector<int32_t> lab(static_cast<size_t>(S * S));
  for (int64_t i = 0; i < S * S; ++i) lab[i] = static_cast<int32_t>((i * 2654435761u) % 4);

  for (double deg : {10.0, -15.0, 7.5}) {
    for (double s : {1.0, 1.1}) {
      AugmentDraw d = only_crop(AugmentDraw{});
      d.rotate = true;
      d.angle_rad = float(deg * std::numbers::pi / 180.0);
      d.scale = s != 1.0;
      d.scale_factor = float(s);
      set_warp(d);
      d.crop_ry = d.crop_rx = kPad;  // offset = pad: the window is the slice itself
      const Out o = run(d, img, lab, S);
      const double t = d.angle_rad;
      double worst = 0;
      int checked = 0;
      for (int64_t y = 0; y < S; ++y)
        for (int64_t x = 0; x < S; ++x) {
          const double dx = x - c, dy = y - c;
          const double qx = c + (std::cos(t) * dx + std::sin(t) * dy) / s;
          const double qy = c + (-std::sin(t) * dx + std::cos(t) * dy) / s;
          if (qx < 0 || qy < 0 || qx > S - 1 || qy > S - 1) continue;
          ++checked;
          for (int ch = 0; ch < kAugChannels; ++ch)
            worst = std::max(worst, std::fabs(o.img[(ch * S + y) * S + x] - (0.01 * qx - 0.02 * qy + ch)));
        }
      INFO("deg " << deg << " scale " << s);
      CHECK(checked > S * S / 2);
      CHECK(worst < 1e-4);
    }
  }
  // 90 degrees (outside the training range, exact for labels): out(y, x) = lab(S-1-x, y).
  AugmentDraw d = only_crop(AugmentDraw{});
  d.rotate = true;
  d.angle_rad = float(std::numbers::pi / 2);
  set_warp(d);
  d.crop_ry = d.crop_rx = kPad;
  const Out o = run(d, img, lab, S);
  bool same = true;
  for (int64_t y = 0; y < S; ++y)
    for (int64_t x = 0; x < S; ++x) same = same && o.lab[y * S + x] == lab[(S - 1 - x) * S + y];
  CHECK(same);
}

TEST_CASE("brightness shifts, gamma keeps mean and std, noise adds sigma", "[data][augment]") {
  const auto img = random_image(kS, 31);
  const auto lab = random_labels(kS, 32);
  const int64_t n = kO * kO;
  for (int64_t s = 0; s < 8; ++s) {
    const AugmentDraw base = only_crop(draw_augmentation(77, 0, s));
    const Out ref = run(base, img, lab, kS);

    AugmentDraw b = base;
    b.brightness = true;
    const Out ob = run(b, img, lab, kS);
    for (int c = 0; c < kAugChannels; ++c)
      CHECK(std::fabs(ob.img[c * n + 5] - ref.img[c * n + 5] - b.brightness_shift[c]) < 1e-5);

    AugmentDraw g = base;
    g.gamma = true;
    const Out og = run(g, img, lab, kS);
    for (int c = 0; c < kAugChannels; ++c) {
      double m0, s0, m1, s1;
      mean_std(ref.img.data() + c * n, n, m0, s0);
      mean_std(og.img.data() + c * n, n, m1, s1);
      CHECK(std::fabs(m1 - m0) < 1e-4);
      CHECK(std::fabs(s1 - s0) < 1e-4 * s0);
      if (std::fabs(g.gamma_value[c] - 1.f) > 0.05f) CHECK(og.img[c * n + 3] != ref.img[c * n + 3]);
      // monotone: the order of two pixels is kept
      CHECK((og.img[c * n + 10] < og.img[c * n + 20]) == (ref.img[c * n + 10] < ref.img[c * n + 20]));
    }
    CHECK(og.lab == ref.lab);

    AugmentDraw z = base;
    z.noise = true;
    const Out oz = run(z, img, lab, kS);
    double s2 = 0;
    for (int64_t i = 0; i < kAugChannels * n; ++i) s2 += double(oz.img[i] - ref.img[i]) * (oz.img[i] - ref.img[i]);
    CHECK(std::fabs(std::sqrt(s2 / (kAugChannels * n)) - 0.1) < 0.005);
  }
  // A constant channel is left alone by gamma.
  std::vector<float> flat(static_cast<size_t>(kAugChannels * kS * kS), 2.5f);
  AugmentDraw g = only_crop(draw_augmentation(1, 1, 1));
  g.gamma = true;
  const Out o = run(g, flat, lab, kS);
  for (float v : o.img) CHECK(v == 2.5f);
}

TEST_CASE("augment_cpu rejects impossible sizes", "[data][augment]") {
  std::vector<float> img(4 * 8 * 8);
  std::vector<float> out(4 * 64 * 64);
  const AugmentDraw d;
  CHECK_THROWS(augment_cpu(d, img.data(), nullptr, 8, out.data(), nullptr, 64, 16));
  CHECK_NOTHROW(augment_cpu(d, img.data(), nullptr, 8, out.data(), nullptr, 40, 16));
}
