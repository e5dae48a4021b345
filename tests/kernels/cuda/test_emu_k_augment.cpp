// kernels/cuda/augment.cu under the SIMT emulator against lk::data::augment_cpu
// for the same draws: images within a value-scaled 1e-5 (the gamma statistics
// are summed in another order), labels exactly (the source coordinates are
// computed with the same fmaf sequence on both sides, so even ties at exact
// half pixels round the same way).
#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "kernels/augment.h"
#include "kernels/cuda/augment.h"
#include "kernels/augment.h"
#include "tests/kernels/cuda/emu_util.h"

using lk::data::AugmentDraw;
using lk::emu_test::DeviceBuffer;
using lk::emu_test::scaled_error;

namespace {

struct NoLeaks {
  size_t before = lk::simt::live_allocations();
  ~NoLeaks() { CHECK(lk::simt::live_allocations() == before); }
};

// Four slices: all transforms; none but the crop; a random draw; warp + gamma.
std::vector<AugmentDraw> draws_for(uint64_t seed) {
  std::vector<AugmentDraw> d;
  for (int64_t s = 0; s < 4; ++s) {
    AugmentDraw a = lk::data::draw_augmentation(seed, 2, s);
    if (s == 0) a.noise = a.brightness = a.gamma = a.scale = a.rotate = true;
    if (s == 1) a.noise = a.brightness = a.gamma = a.scale = a.rotate = false;
    if (s == 3) {
      a.gamma = a.rotate = true;
      a.noise = false;
    }
    lk::data::set_warp(a);
    d.push_back(a);
  }
  return d;
}

void check_batch(int64_t S, int64_t O, int64_t pad, uint64_t seed) {
  INFO("S " << S << " O " << O << " pad " << pad << " seed " << seed);
  constexpr int64_t B = 4, C = lk::data::kAugChannels;
  std::mt19937 rng(static_cast<unsigned>(seed));
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> img(static_cast<size_t>(B * C * S * S));
  for (float& v : img) v = nd(rng);
  std::vector<int32_t> lab(static_cast<size_t>(B * S * S));
  for (int32_t& l : lab) l = static_cast<int32_t>(rng() % 4);
  const std::vector<AugmentDraw> draws = draws_for(seed);

  std::vector<float> ref_img(static_cast<size_t>(B * C * O * O));
  std::vector<int32_t> ref_lab(static_cast<size_t>(B * O * O));
  for (int64_t b = 0; b < B; ++b)
    lk::data::augment_cpu(draws[b], img.data() + b * C * S * S, lab.data() + b * S * S, S,
                          ref_img.data() + b * C * O * O, ref_lab.data() + b * O * O, O, pad);

  DeviceBuffer<float> d_img(img), d_out(ref_img.size());
  DeviceBuffer<int32_t> d_lab(lab), d_out_lab(ref_lab.size());
  DeviceBuffer<AugmentDraw> d_draws(draws);
  REQUIRE(lk::cuda::augment_batch(d_draws.get(), B, d_img.get(), d_lab.get(), S, d_out.get(), d_out_lab.get(), O,
                                  pad) == cudaSuccess);
  const std::vector<float> got = d_out.download();
  for (int64_t b = 0; b < B; ++b) {
    INFO("slice " << b);
    const std::vector<float> g(got.begin() + b * C * O * O, got.begin() + (b + 1) * C * O * O);
    const std::vector<float> r(ref_img.begin() + b * C * O * O, ref_img.begin() + (b + 1) * C * O * O);
    CHECK(scaled_error(g, r) <= 1e-5);
  }
  CHECK(d_out_lab.download() == ref_lab);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

}  // namespace

TEST_CASE("emu augment: the fused kernel matches augment_cpu", "[emu]") {
  NoLeaks no_leaks;
  check_batch(128, 128, 16, 1);
  check_batch(96, 128, 16, 2);
  check_batch(96, 80, 16, 3);
  check_batch(40, 33, 5, 4);
}

// Every CUDA thread an OS thread (the gamma statistics are a block
// reduction): what tools/tsan_check.sh --ci runs under ThreadSanitizer.
TEST_CASE("emu augment: the fused kernel in threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  check_batch(24, 20, 4, 5);
}

TEST_CASE("emu augment: images only, empty batch, bad sizes", "[emu]") {
  NoLeaks no_leaks;
  const std::vector<AugmentDraw> draws = draws_for(9);
  constexpr int64_t S = 32, O = 32;
  std::vector<float> img(4 * 4 * S * S, 1.5f);
  DeviceBuffer<float> d_img(img), d_out(img.size());
  DeviceBuffer<AugmentDraw> d_draws(draws);
  REQUIRE(lk::cuda::augment_batch(d_draws.get(), 4, d_img.get(), nullptr, S, d_out.get(), nullptr, O, 4) ==
          cudaSuccess);
  std::vector<float> ref(img.size());
  for (int64_t b = 0; b < 4; ++b)
    lk::data::augment_cpu(draws[b], img.data() + b * 4 * S * S, nullptr, S, ref.data() + b * 4 * O * O, nullptr, O,
                          4);
  CHECK(scaled_error(d_out.download(), ref) <= 1e-5);
  CHECK(lk::cuda::augment_batch(d_draws.get(), 0, nullptr, nullptr, S, nullptr, nullptr, O, 4) == cudaSuccess);
  CHECK(lk::cuda::augment_batch(d_draws.get(), 4, d_img.get(), nullptr, S, d_out.get(), nullptr, 100, 4) ==
        cudaErrorInvalidValue);
}
