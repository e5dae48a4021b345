// kernels/cuda/depthwise_conv2d.cu: the weight (and bias) gradient, and the
// LKA's exact configurations through forward, backward-data and
// backward-weight, run by the SIMT emulator against kernels/conv2d.h's *_ref
// kernels through cudaMalloc/cudaMemcpy (NaN-poisoned, guarded).
// Value-scaled errors <= 1e-5; the weight gradient (a sum over N*OH*OW
// products) is compared with conv2d_bwd_weight_ref<double>: the float
// reference's own serial rounding would dominate, ours is a tree (~1e-7).
#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/cuda/depthwise_conv2d.h"
#include "tests/kernels/cuda/emu_util.h"

using lk::ConvGeom;
using namespace lk::emu_test;  // DeviceBuffer, scaled_error, uniform, NoLeaks, ...
using lk::emu_test::DeviceBuffer;
using lk::emu_test::scaled_error;

namespace {

constexpr double kTol = 1e-5;

ConvGeom geom(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t dil, int64_t pad) {
  ConvGeom g{};
  g.n = n, g.c_in = c, g.h = h, g.w = w;
  g.c_out = c, g.kh = k, g.kw = k;
  g.stride = 1, g.pad = pad, g.dil = dil, g.groups = c;
  return g;
}

// Weight and bias gradients (added to random initial values).
void check_wgrad(ConvGeom g, bool bias, unsigned seed, bool repeat = true) {
  INFO("depthwise dw n " << g.n << " c " << g.c_in << " " << g.h << "x" << g.w << " k " << g.kh << " dil " << g.dil
                         << " pad " << g.pad << " bias " << bias);
  REQUIRE(g.finish());
  const size_t nx = static_cast<size_t>(g.n * g.c_in * g.h * g.w), ny = static_cast<size_t>(g.n * g.c_out * g.oh * g.ow),
               nw = static_cast<size_t>(g.c_out * g.kh * g.kw), nb = static_cast<size_t>(g.c_out);
  const std::vector<float> x = uniform(nx, seed, -1.f, 1.f), dy = uniform(ny, seed + 1, -1.f, 1.f),
                           dw0 = uniform(nw, seed + 2, -1.f, 1.f), db0 = uniform(nb, seed + 3, -1.f, 1.f);
  std::vector<double> dw_ref = to_double(dw0), db_ref = to_double(db0);
  const std::vector<double> xd = to_double(x), dyd = to_double(dy);
  lk::cpu::conv2d_bwd_weight_ref<double>(g, dyd.data(), xd.data(), dw_ref.data(), bias ? db_ref.data() : nullptr);

  const size_t ws_bytes = lk::cuda::depthwise_conv2d_bwd_weight_workspace_bytes(g);
  REQUIRE(ws_bytes > 0);
  DeviceBuffer<float> d_x(x), d_dy(dy), d_dw(dw0), d_db(db0);
  DeviceBuffer<unsigned char> ws(ws_bytes);
  REQUIRE(lk::cuda::depthwise_conv2d_bwd_weight(g, d_dy.get(), d_x.get(), d_dw.get(), bias ? d_db.get() : nullptr,
                                                ws.get(), ws_bytes) == cudaSuccess);
  CHECK(scaled_error(d_dw.download(), to_float(dw_ref)) <= kTol);
  CHECK(scaled_error(d_db.download(), bias ? to_float(db_ref) : db0) <= kTol);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  // Written instead of added (into NaN-poisoned buffers).
  {
    std::vector<double> dw_w(nw, 0.0), db_w(nb, 0.0);
    lk::cpu::conv2d_bwd_weight_ref<double>(g, dyd.data(), xd.data(), dw_w.data(), db_w.data());
    DeviceBuffer<float> d_dw_w(nw), d_db_w(nb);
    REQUIRE(lk::cuda::depthwise_conv2d_bwd_weight(g, d_dy.get(), d_x.get(), d_dw_w.get(), d_db_w.get(), ws.get(),
                                                  ws_bytes, nullptr, false, false) == cudaSuccess);
    CHECK(scaled_error(d_dw_w.download(), to_float(dw_w)) <= kTol);
    CHECK(scaled_error(d_db_w.download(), to_float(db_w)) <= kTol);
  }
  // Deterministic: a second pass adds exactly the same amounts again.
  if (!repeat) return;
  const std::vector<float> once = d_dw.download();
  REQUIRE(d_dw.upload(dw0) == cudaSuccess);
  REQUIRE(lk::cuda::depthwise_conv2d_bwd_weight(g, d_dy.get(), d_x.get(), d_dw.get(), nullptr, ws.get(), ws_bytes) ==
          cudaSuccess);
  CHECK(d_dw.download() == once);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

// Forward (bias, no accumulate: every output written), backward data and
// backward weight for one configuration.
void check_all(ConvGeom g, unsigned seed) {
  INFO("depthwise all passes n " << g.n << " c " << g.c_in << " " << g.h << "x" << g.w << " k " << g.kh << " dil "
                                 << g.dil << " pad " << g.pad);
  REQUIRE(g.finish());
  REQUIRE(lk::cuda::depthwise_conv2d_supported(g));
  const size_t nx = static_cast<size_t>(g.n * g.c_in * g.h * g.w), ny = static_cast<size_t>(g.n * g.c_out * g.oh * g.ow),
               nw = static_cast<size_t>(g.c_out * g.kh * g.kw);
  const std::vector<float> x = uniform(nx, seed, -1.f, 1.f), w = uniform(nw, seed + 1, -1.f, 1.f),
                           b = uniform(g.c_out, seed + 2, -1.f, 1.f), dy = uniform(ny, seed + 3, -1.f, 1.f),
                           dx0 = uniform(nx, seed + 4, -1.f, 1.f);
  std::vector<float> y_ref(ny), dx_ref = dx0;
  lk::cpu::conv2d_fwd_ref<float>(g, x.data(), w.data(), b.data(), y_ref.data());
  lk::cpu::conv2d_bwd_data_ref<float>(g, dy.data(), w.data(), dx_ref.data());
  DeviceBuffer<float> d_x(x), d_w(w), d_b(b), d_y(ny), d_dy(dy), d_dx(dx0);
  REQUIRE(lk::cuda::depthwise_conv2d_fwd(g, d_x.get(), d_w.get(), d_b.get(), d_y.get()) == cudaSuccess);
  CHECK(scaled_error(d_y.download(), y_ref) <= kTol);
  REQUIRE(lk::cuda::depthwise_conv2d_bwd_data(g, d_dy.get(), d_w.get(), d_dx.get()) == cudaSuccess);
  CHECK(scaled_error(d_dx.download(), dx_ref) <= kTol);
  // Written instead of added: into a NaN-poisoned buffer, every element written.
  std::vector<float> dx_w(nx, 0.f);
  lk::cpu::conv2d_bwd_data_ref<float>(g, dy.data(), w.data(), dx_w.data());
  DeviceBuffer<float> d_dx_w(nx);
  REQUIRE(lk::cuda::depthwise_conv2d_bwd_data(g, d_dy.get(), d_w.get(), d_dx_w.get(), nullptr, false) == cudaSuccess);
  CHECK(scaled_error(d_dx_w.download(), dx_w) <= kTol);
  check_wgrad(g, true, seed + 5);
}

// Every pass in storage type T against the float64 plain loops on the same
// (T-rounded) inputs; dx written, dw and db written.
template <typename T>
void check_storage(ConvGeom g, unsigned seed) {
  INFO("depthwise " << sizeof(T) << "-byte n " << g.n << " c " << g.c_in << " " << g.h << "x" << g.w << " k " << g.kh
                    << " dil " << g.dil);
  REQUIRE(g.finish());
  const size_t nx = static_cast<size_t>(g.n * g.c_in * g.h * g.w), ny = static_cast<size_t>(g.n * g.c_out * g.oh * g.ow),
               nw = static_cast<size_t>(g.c_out * g.kh * g.kw);
  const std::vector<float> x = rounded<T>(uniform(nx, seed, -1.f, 1.f)), w = uniform(nw, seed + 1, -1.f, 1.f),
                           b = uniform(g.c_out, seed + 2, -1.f, 1.f), dy = rounded<T>(uniform(ny, seed + 3, -1.f, 1.f));
  const std::vector<double> xd = to_double(x), wd = to_double(w), bd = to_double(b), dyd = to_double(dy);
  std::vector<double> y_ref(ny), dx_ref(nx, 0.0), dw_ref(nw, 0.0), db_ref(g.c_out, 0.0);
  lk::cpu::conv2d_fwd_ref<double>(g, xd.data(), wd.data(), bd.data(), y_ref.data());
  lk::cpu::conv2d_bwd_data_ref<double>(g, dyd.data(), wd.data(), dx_ref.data());
  lk::cpu::conv2d_bwd_weight_ref<double>(g, dyd.data(), xd.data(), dw_ref.data(), db_ref.data());
  DeviceBuffer<T> d_x(store<T>(x)), d_y(ny), d_dy(store<T>(dy)), d_dx(nx);
  DeviceBuffer<float> d_w(w), d_b(b), d_dw(nw), d_db(g.c_out);
  REQUIRE(lk::cuda::depthwise_conv2d_fwd<T>(g, d_x.get(), d_w.get(), d_b.get(), d_y.get()) == cudaSuccess);
  CHECK(scaled_error(as_float(d_y.download()), to_float(y_ref)) <= storage_tol<T>());
  REQUIRE(lk::cuda::depthwise_conv2d_bwd_data<T>(g, d_dy.get(), d_w.get(), d_dx.get(), nullptr, false) == cudaSuccess);
  CHECK(scaled_error(as_float(d_dx.download()), to_float(dx_ref)) <= storage_tol<T>());
  const size_t ws_bytes = lk::cuda::depthwise_conv2d_bwd_weight_workspace_bytes(g);
  DeviceBuffer<unsigned char> ws(ws_bytes);
  REQUIRE(lk::cuda::depthwise_conv2d_bwd_weight<T>(g, d_dy.get(), d_x.get(), d_dw.get(), d_db.get(), ws.get(), ws_bytes,
                                                   nullptr, false, false) == cudaSuccess);
  // float gradients of T inputs: the float kernels' tolerance
  CHECK(scaled_error(d_dw.download(), to_float(dw_ref)) <= kTol);
  CHECK(scaled_error(d_db.download(), to_float(db_ref)) <= kTol);
}

}  // namespace

TEST_CASE("emu depthwise: bf16 and f16 storage against the float reference", "[emu]") {
  NoLeaks no_leaks;
  check_storage<lk::bf16>(geom(1, 2, 70, 40, 7, 3, 9), 50);  // 8 rows per thread
  check_storage<lk::f16>(geom(1, 2, 70, 40, 5, 1, 2), 60);
  check_storage<lk::bf16>(geom(2, 3, 8, 8, 7, 1, 3), 70);    // several planes per block
  check_storage<lk::f16>(geom(2, 3, 8, 8, 7, 3, 9), 80);
}

TEST_CASE("emu depthwise: weight and bias gradient on the shape grid", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 1;
  for (int64_t n : {1, 3})
    for (int64_t c : {1, 3, 17, 64})
      for (int64_t k : {5, 7})
        for (int64_t dil : {1, 3})  // (the repeat-for-determinism pass: below, on fewer planes)
          check_wgrad(geom(n, c, 13, 11, k, dil, dil * (k - 1) / 2), true, seed += 5, false);
}

TEST_CASE("emu depthwise: the LKA's convolutions through every pass", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 300;
  check_all(geom(2, 3, 13, 11, 5, 1, 2), seed += 9);   // dw5: 5x5, padding 2
  check_all(geom(2, 3, 13, 11, 7, 1, 3), seed += 9);   // dw7, d = 1: padding 3
  check_all(geom(2, 3, 13, 11, 7, 3, 9), seed += 9);   // dw7, d = 3 (VAN): padding 9
  check_all(geom(1, 2, 40, 35, 7, 3, 9), seed += 9);   // several tiles both ways
}

TEST_CASE("emu depthwise: every launch shape of the forward and backward data", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 400;
  check_all(geom(1, 2, 70, 40, 7, 1, 3), seed += 9);  // 8 rows per thread, 32-column warps
  check_all(geom(1, 2, 70, 40, 7, 3, 9), seed += 9);  // 8 rows a dilation apart, 6 thread rows
  check_all(geom(1, 2, 70, 12, 5, 1, 2), seed += 9);  // 8 rows, 16-column tiles (bank-free pitch)
  check_all(geom(1, 2, 36, 7, 7, 2, 6), seed += 9);   // 4 rows, 8-column tiles, dilation 2
  check_all(geom(3, 5, 8, 8, 7, 3, 9), seed += 9);    // 1 row, 4 planes per block, the last group short
  check_all(geom(2, 3, 5, 6, 5, 1, 2), seed += 9);    // planes smaller than a tile
}

TEST_CASE("emu depthwise: weight gradient across tiles, row blocking and paddings", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 500;
  for (int64_t k : {5, 7})
    for (int64_t dil : {1, 3}) {
      check_wgrad(geom(2, 3, 37, 45, k, dil, dil * (k - 1) / 2), true, seed += 5);  // 3 rows per thread, 3 tiles wide
      check_wgrad(geom(1, 2, 70, 20, k, dil, dil * (k - 1) / 2), false, seed += 5);  // 4 rows per thread, 2 tiles tall
      check_wgrad(geom(1, 2, 37, 45, k, dil, 0), true, seed += 5);                   // valid
      check_wgrad(geom(1, 2, 37, 45, k, dil, dil * (k - 1) + 2), true, seed += 5);   // pad beyond the span
    }
  // Dilation 15: the 7x7 halo leaves room for one row per thread only.
  check_wgrad(geom(1, 2, 40, 20, 7, 15, 45), true, seed += 5);
  check_wgrad(geom(1, 4, 16, 16, 5, 2, 4), true, seed += 5);  // exactly one tile
}

TEST_CASE("emu depthwise: in threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  check_wgrad(geom(1, 2, 20, 18, 7, 3, 9), true, 700);
  check_all(geom(1, 2, 36, 20, 7, 1, 3), 710);  // 4 rows per thread
}

TEST_CASE("emu depthwise: weight gradient refuses what it does not implement", "[emu]") {
  NoLeaks no_leaks;
  ConvGeom g = geom(1, 4, 13, 11, 3, 1, 1);
  REQUIRE(g.finish());
  CHECK(lk::cuda::depthwise_conv2d_bwd_weight_workspace_bytes(g) == 0);  // 3x3
  CHECK(lk::cuda::depthwise_conv2d_bwd_weight<float>(g, nullptr, nullptr, nullptr, nullptr, nullptr, 0) ==
        cudaErrorInvalidValue);
  g = geom(1, 4, 13, 11, 5, 1, 2);
  REQUIRE(g.finish());
  const size_t ws_bytes = lk::cuda::depthwise_conv2d_bwd_weight_workspace_bytes(g);
  REQUIRE(ws_bytes > 0);
  DeviceBuffer<unsigned char> ws(ws_bytes);
  CHECK(lk::cuda::depthwise_conv2d_bwd_weight<float>(g, nullptr, nullptr, nullptr, nullptr, ws.get(), ws_bytes - 4) ==
        cudaErrorInvalidValue);
}
