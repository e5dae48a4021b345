// kernels/cuda/upsample.cu under the SIMT emulator against kernels/upsample.h,
// reference in double: value-scaled error max|a-b| / max|ref| <= 1e-5.
// Outputs start NaN-poisoned; gradients start random, so the backward must add.
#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "kernels/cuda/upsample.h"
#include "kernels/upsample.h"
#include "tests/kernels/cuda/emu_util.h"

using lk::UpsampleMode;
using namespace lk::emu_test;  // DeviceBuffer, scaled_error, uniform, NoLeaks, ...
using lk::emu_test::DeviceBuffer;
using lk::emu_test::scaled_error;

namespace {

constexpr double kTol = 1e-5;

void check_upsample(UpsampleMode mode, int64_t planes, int64_t h, int64_t w, int64_t f, unsigned seed) {
  INFO("upsample " << (mode == UpsampleMode::Nearest ? "nearest" : "bilinear") << " planes " << planes << " " << h
                   << "x" << w << " f " << f);
  const int64_t nx = planes * h * w, ny = nx * f * f;
  const std::vector<float> x = uniform(nx, seed, -1.f, 1.f), dy = uniform(ny, seed + 1, -1.f, 1.f),
                           dx0 = uniform(nx, seed + 2, -1.f, 1.f);
  std::vector<double> y_ref(ny), dx_ref = widen(dx0);
  const std::vector<double> x_d = widen(x), dy_d = widen(dy);
  lk::cpu::upsample_fwd<double>(mode, planes, h, w, f, x_d.data(), y_ref.data());
  lk::cpu::upsample_bwd<double>(mode, planes, h, w, f, dy_d.data(), dx_ref.data());

  DeviceBuffer<float> d_x(x), d_y(ny), d_dy(dy), d_dx(dx0);
  REQUIRE(lk::cuda::upsample_fwd(mode, planes, h, w, f, d_x.get(), d_y.get()) == cudaSuccess);
  CHECK(scaled_error(d_y.download(), narrow(y_ref)) <= kTol);
  REQUIRE(lk::cuda::upsample_bwd(mode, planes, h, w, f, d_dy.get(), d_dx.get()) == cudaSuccess);
  CHECK(scaled_error(d_dx.download(), narrow(dx_ref)) <= kTol);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

}  // namespace

TEST_CASE("emu upsample: nearest and bilinear match upsample_* on the shape grid", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 100;
  for (UpsampleMode mode : {UpsampleMode::Nearest, UpsampleMode::Bilinear})
    for (int64_t n : {1, 3})
      for (int64_t c : {1, 3, 17, 64})
        for (int64_t f : {2, 4, 8}) check_upsample(mode, n * c, 13, 11, f, seed += 10);
}

TEST_CASE("emu upsample: other factors and degenerate planes", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 1000;
  for (UpsampleMode mode : {UpsampleMode::Nearest, UpsampleMode::Bilinear}) {
    for (int64_t f : {1, 3, 5, 16}) check_upsample(mode, 2, 7, 6, f, seed += 10);  // any factor (F = 0)
    for (int64_t f : {2, 3, 8}) {
      check_upsample(mode, 2, 1, 9, f, seed += 10);  // one row: i1 clamps to i0
      check_upsample(mode, 2, 8, 1, f, seed += 10);
      check_upsample(mode, 1, 1, 1, f, seed += 10);
    }
    check_upsample(mode, 1, 40, 37, 2, seed += 10);  // several blocks per plane
  }
}

TEST_CASE("emu upsample: in threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  check_upsample(UpsampleMode::Bilinear, 2, 9, 7, 4, 3000);
  check_upsample(UpsampleMode::Nearest, 2, 9, 7, 2, 3010);
}

TEST_CASE("emu upsample: empty and invalid sizes", "[emu]") {
  NoLeaks no_leaks;
  CHECK(lk::cuda::upsample_fwd<float>(UpsampleMode::Bilinear, 0, 4, 4, 2, nullptr, nullptr) == cudaSuccess);
  CHECK(lk::cuda::upsample_bwd<float>(UpsampleMode::Nearest, 3, 0, 4, 2, nullptr, nullptr) == cudaSuccess);
  CHECK(lk::cuda::upsample_fwd<float>(UpsampleMode::Nearest, 1, 4, 4, 0, nullptr, nullptr) == cudaErrorInvalidValue);
  CHECK(lk::cuda::upsample_bwd<float>(UpsampleMode::Bilinear, -1, 4, 4, 2, nullptr, nullptr) == cudaErrorInvalidValue);
  CHECK(lk::cuda::upsample_fwd<float>(UpsampleMode::Bilinear, 1, 1 << 16, 1 << 16, 2, nullptr, nullptr) ==
        cudaErrorInvalidValue);  // an output plane beyond int
}
