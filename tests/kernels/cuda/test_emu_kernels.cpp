// Our CUDA kernels (kernels/cuda/*.cu), run by the SIMT emulator, against
// the CPU reference kernels: device buffers through cudaMalloc/cudaMemcpy
// (NaN-poisoned, guarded), value-scaled error max|a-b| / max|ref| <= 1e-5.
#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "kernels/activation.h"
#include "kernels/conv2d.h"
#include "kernels/cuda/activation.h"
#include "kernels/cuda/depthwise_conv2d.h"
#include "tests/kernels/cuda/emu_util.h"

using lk::Activation;
using lk::ConvGeom;
using namespace lk::emu_test;  // DeviceBuffer, scaled_error, uniform, NoLeaks, ...
using lk::emu_test::DeviceBuffer;
using lk::emu_test::scaled_error;

namespace {

constexpr double kTol = 1e-5;

void check_activation(Activation a, int64_t n, unsigned seed) {
  INFO("activation " << (a == Activation::Relu ? "relu" : "sigmoid") << " n " << n);
  // Wide range (sigmoid saturation), exact zeros for relu's kink.
  std::vector<float> x = uniform(n, seed, -30.f, 30.f);
  for (int64_t i = 0; i < n; i += 7) x[i] = 0.f;
  const std::vector<float> dy = uniform(n, seed + 1, -1.f, 1.f), dx0 = uniform(n, seed + 2, -1.f, 1.f);

  std::vector<float> y_ref(n), dx_ref = dx0;
  lk::cpu::activation_fwd<float>(a, n, x.data(), y_ref.data());
  lk::cpu::activation_bwd<float>(a, n, dy.data(), y_ref.data(), dx_ref.data());

  DeviceBuffer<float> dx_in(x), d_y(n), d_dy(dy), d_dx(dx0);
  REQUIRE(lk::cuda::activation_fwd(a, n, dx_in.get(), d_y.get()) == cudaSuccess);
  const std::vector<float> y = d_y.download();
  CHECK(scaled_error(y, y_ref) <= kTol);
  // Backward from the reference output, so the two passes are checked apart.
  REQUIRE(d_y.upload(y_ref) == cudaSuccess);
  REQUIRE(lk::cuda::activation_bwd(a, n, d_dy.get(), d_y.get(), d_dx.get()) == cudaSuccess);
  CHECK(scaled_error(d_dx.download(), dx_ref) <= kTol);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

struct DwCase {
  int64_t n, c, h, w, k, dil, pad;
  bool bias = true, accumulate = false;
};

void check_depthwise(const DwCase& t, unsigned seed) {
  ConvGeom g{};
  g.n = t.n, g.c_in = t.c, g.h = t.h, g.w = t.w;
  g.c_out = t.c, g.kh = t.k, g.kw = t.k;
  g.stride = 1, g.pad = t.pad, g.dil = t.dil, g.groups = t.c;
  INFO("depthwise n " << t.n << " c " << t.c << " " << t.h << "x" << t.w << " k " << t.k << " dil " << t.dil << " pad "
                      << t.pad << " bias " << t.bias << " accumulate " << t.accumulate);
  REQUIRE(g.finish());
  REQUIRE(lk::cuda::depthwise_conv2d_supported(g));
  const int64_t nx = g.n * g.c_in * g.h * g.w, ny = g.n * g.c_out * g.oh * g.ow;
  const std::vector<float> x = uniform(nx, seed, -1.f, 1.f), w = uniform(g.c_out * g.kh * g.kw, seed + 1, -1.f, 1.f),
                           b = uniform(g.c_out, seed + 2, -1.f, 1.f), dy = uniform(ny, seed + 3, -1.f, 1.f),
                           y0 = uniform(ny, seed + 4, -1.f, 1.f), dx0 = uniform(nx, seed + 5, -1.f, 1.f);

  std::vector<float> y_ref = y0, dx_ref = dx0;
  lk::cpu::conv2d_fwd_ref<float>(g, x.data(), w.data(), t.bias ? b.data() : nullptr, y_ref.data(), t.accumulate);
  lk::cpu::conv2d_bwd_data_ref<float>(g, dy.data(), w.data(), dx_ref.data());

  DeviceBuffer<float> d_x(x), d_w(w), d_b(b), d_dy(dy), d_dx(dx0);
  // Without accumulate the output starts NaN-poisoned: every element must be written.
  DeviceBuffer<float> d_y(static_cast<size_t>(ny));
  if (t.accumulate) REQUIRE(d_y.upload(y0) == cudaSuccess);
  REQUIRE(lk::cuda::depthwise_conv2d_fwd(g, d_x.get(), d_w.get(), t.bias ? d_b.get() : nullptr, d_y.get(),
                                         t.accumulate) == cudaSuccess);
  CHECK(scaled_error(d_y.download(), y_ref) <= kTol);
  REQUIRE(lk::cuda::depthwise_conv2d_bwd_data(g, d_dy.get(), d_w.get(), d_dx.get()) == cudaSuccess);
  CHECK(scaled_error(d_dx.download(), dx_ref) <= kTol);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

}  // namespace

TEST_CASE("emu kernels: relu and sigmoid match the CPU kernels", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 10;
  // 270000 > 1024 blocks * 256 threads: the grid-stride loop wraps.
  for (int64_t n : {1, 7, 255, 256, 257, 1000, 4099, 270000})
    for (Activation a : {Activation::Relu, Activation::Sigmoid}) check_activation(a, n, seed++);
  CHECK(lk::cuda::activation_fwd<float>(Activation::Relu, 0, nullptr, nullptr) == cudaSuccess);
}

TEST_CASE("emu kernels: relu and sigmoid in threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  check_activation(Activation::Relu, 700, 1);
  check_activation(Activation::Sigmoid, 700, 2);
}

TEST_CASE("emu kernels: depthwise conv2d matches conv2d_*_ref on the shape grid", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 100;
  for (int64_t n : {1, 3})
    for (int64_t c : {1, 3, 17, 64})
      for (int64_t k : {5, 7})
        for (int64_t dil : {1, 3}) check_depthwise({n, c, 13, 11, k, dil, dil * (k - 1) / 2}, seed++);
}

TEST_CASE("emu kernels: depthwise conv2d across tiles, paddings, bias and accumulate", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 200;
  // 37x45: several 16x16 tiles, halos crossing tile borders.
  for (int64_t k : {5, 7})
    for (int64_t dil : {1, 3}) {
      check_depthwise({2, 3, 37, 45, k, dil, dil * (k - 1) / 2}, seed++);  // same
      check_depthwise({1, 2, 37, 45, k, dil, 0}, seed++);                  // valid
      check_depthwise({1, 2, 37, 45, k, dil, 1, false, true}, seed++);     // odd pad, no bias, y +=
      check_depthwise({1, 2, 37, 45, k, dil, dil * (k - 1) + 2}, seed++);  // pad beyond the span
    }
  check_depthwise({1, 4, 33, 17, 7, 9, 27}, seed++);  // the LKA's dilated 7x7
  check_depthwise({1, 4, 16, 16, 5, 2, 4}, seed++);   // exactly one tile
}

TEST_CASE("emu kernels: depthwise conv2d in threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  check_depthwise({1, 2, 20, 18, 7, 3, 9}, 300);
}

TEST_CASE("emu kernels: depthwise conv2d rejects what it does not implement", "[emu]") {
  ConvGeom g{};
  g.n = 1, g.c_in = 4, g.h = 13, g.w = 11, g.c_out = 4, g.kh = 3, g.kw = 3, g.pad = 1, g.groups = 4;
  REQUIRE(g.finish());
  CHECK_FALSE(lk::cuda::depthwise_conv2d_supported(g));  // 3x3
  CHECK(lk::cuda::depthwise_conv2d_fwd<float>(g, nullptr, nullptr, nullptr, nullptr) == cudaErrorInvalidValue);
  g.kh = g.kw = 5, g.stride = 2;
  REQUIRE(g.finish());
  CHECK_FALSE(lk::cuda::depthwise_conv2d_supported(g));  // strided
  g.stride = 1, g.groups = 1;
  CHECK_FALSE(lk::cuda::depthwise_conv2d_supported(g));  // dense
  g.groups = 4, g.kh = g.kw = 7, g.dil = 30, g.pad = 90;
  REQUIRE(g.finish());
  CHECK_FALSE(lk::cuda::depthwise_conv2d_supported(g));  // halo tile above 48 KiB
}
