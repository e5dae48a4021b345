// The direct CUDA convolution and linear kernels (kernels/cuda/conv2d_direct.h,
// linear.h) under the SIMT emulator against the CPU references, over the
// shape grid: batch 1 and 3, odd sizes, channels 1/3/17, kernels 1/3/5/7,
// stride 1 and 2, dilation 1 and 3, groups. Backward outputs start from
// random values (they must ADD); fresh device memory is NaN (unwritten
// elements fail). Error: max|a-b| / max|ref| <= 1e-5.
#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/cuda/conv2d_direct.h"
#include "kernels/cuda/linear.h"
#include "kernels/linear.h"
#include "simt/runtime.h"
#include "tests/kernels/cuda/emu_util.h"

using lk::ConvGeom;
using lk::emu_test::DeviceBuffer;
using lk::emu_test::scaled_error;

namespace {

std::vector<float> randv(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

struct Case {
  int64_t n, cin, cout, h, w, k, stride, pad, dil, groups;
};

// Forward (and accumulating forward), backward data and backward weight of one case.
void check_conv(const Case& c, unsigned seed) {
  ConvGeom g{c.n, c.cin, c.h, c.w, c.cout, c.k, c.k, c.stride, c.pad, c.dil, c.groups, 0, 0};
  REQUIRE(g.finish());
  INFO("conv n" << c.n << " c" << c.cin << "->" << c.cout << " k" << c.k << " s" << c.stride << " p" << c.pad
                << " d" << c.dil << " g" << c.groups);
  const size_t nx = size_t(g.n * g.c_in * g.h * g.w), ny = size_t(g.n * g.c_out * g.oh * g.ow);
  const size_t nw = size_t(g.c_out * (g.c_in / g.groups) * g.kh * g.kw);
  const auto x = randv(nx, seed++), w = randv(nw, seed++), b = randv(size_t(g.c_out), seed++);
  const auto dy = randv(ny, seed++), dx0 = randv(nx, seed++), dw0 = randv(nw, seed++), db0 = randv(size_t(g.c_out), seed++);

  std::vector<float> y_ref(ny), dx_ref = dx0, dw_ref = dw0, db_ref = db0;
  lk::cpu::conv2d_fwd_ref<float>(g, x.data(), w.data(), b.data(), y_ref.data());
  lk::cpu::conv2d_bwd_data_ref<float>(g, dy.data(), w.data(), dx_ref.data());
  lk::cpu::conv2d_bwd_weight_ref<float>(g, dy.data(), x.data(), dw_ref.data(), db_ref.data());

  DeviceBuffer<float> dx_(x), dw_(w), db_(b), ddy(dy), dy_(ny), ddx(dx0), ddw(dw0), ddb(db0);
  REQUIRE(lk::cuda::conv2d_direct_fwd(g, dx_.get(), dw_.get(), db_.get(), dy_.get()) == cudaSuccess);
  REQUIRE(lk::cuda::conv2d_direct_bwd_data(g, ddy.get(), dw_.get(), ddx.get()) == cudaSuccess);
  REQUIRE(lk::cuda::conv2d_direct_bwd_weight(g, ddy.get(), dx_.get(), ddw.get(), ddb.get()) == cudaSuccess);
  CHECK(scaled_error(dy_.download(), y_ref) <= 1e-5);
  CHECK(scaled_error(ddx.download(), dx_ref) <= 1e-5);
  CHECK(scaled_error(ddw.download(), dw_ref) <= 1e-5);
  CHECK(scaled_error(ddb.download(), db_ref) <= 1e-5);

  // accumulate: y += conv(x) + b
  std::vector<float> y2_ref = y_ref;
  for (size_t i = 0; i < ny; ++i) y2_ref[i] *= 2;
  REQUIRE(lk::cuda::conv2d_direct_fwd(g, dx_.get(), dw_.get(), db_.get(), dy_.get(), true) == cudaSuccess);
  CHECK(scaled_error(dy_.download(), y2_ref) <= 1e-5);
}

}  // namespace

TEST_CASE("direct conv2d forward, backward data and weight match the CPU reference", "[emu][conv]") {
  const Case cases[] = {
      {1, 3, 17, 13, 11, 3, 1, 1, 1, 1}, {3, 17, 3, 9, 7, 3, 2, 1, 1, 1}, {1, 17, 5, 8, 8, 1, 1, 0, 1, 1},
      {3, 1, 3, 13, 11, 5, 1, 2, 1, 1},  {1, 3, 5, 13, 11, 3, 1, 3, 3, 1}, {1, 4, 6, 9, 8, 3, 1, 0, 1, 2},
      {1, 3, 3, 13, 11, 7, 2, 3, 1, 3},  {1, 6, 6, 12, 10, 7, 1, 9, 3, 6},
  };
  const size_t live = lk::simt::live_allocations();
  unsigned seed = 1;
  for (const Case& c : cases) {
    check_conv(c, seed);
    seed += 7;
  }
  CHECK(lk::simt::live_allocations() == live);
}

// Every CUDA thread an OS thread: what tools/tsan_check.sh --ci runs under
// ThreadSanitizer (a small case with groups and stride).
TEST_CASE("direct conv2d in threads mode", "[emu][conv]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  const size_t live = lk::simt::live_allocations();
  check_conv({2, 4, 6, 7, 6, 3, 2, 1, 1, 2}, 99);
  CHECK(lk::simt::live_allocations() == live);
}

TEST_CASE("linear forward and backward match the CPU kernels", "[emu]") {
  for (int64_t n : {1, 3})
    for (auto [in, out] : {std::pair<int64_t, int64_t>{17, 4}, {4, 64}, {1, 1}}) {
      INFO("linear n" << n << " " << in << "->" << out);
      const auto x = randv(size_t(n * in), 1), w = randv(size_t(out * in), 2), b = randv(size_t(out), 3);
      const auto dy = randv(size_t(n * out), 4), dx0 = randv(size_t(n * in), 5), dw0 = randv(size_t(out * in), 6),
                 db0 = randv(size_t(out), 7);
      std::vector<float> y_ref(size_t(n * out)), dx_ref = dx0, dw_ref = dw0, db_ref = db0;
      lk::cpu::linear_fwd<float>(n, in, out, x.data(), w.data(), b.data(), y_ref.data());
      lk::cpu::linear_bwd<float>(n, in, out, dy.data(), x.data(), w.data(), dx_ref.data(), dw_ref.data(), db_ref.data());
      DeviceBuffer<float> dx_(x), dw_(w), db_(b), ddy(dy), dy_(size_t(n * out)), ddx(dx0), ddw(dw0), ddb(db0);
      REQUIRE(lk::cuda::linear_fwd(n, in, out, dx_.get(), dw_.get(), db_.get(), dy_.get()) == cudaSuccess);
      REQUIRE(lk::cuda::linear_bwd(n, in, out, ddy.get(), dx_.get(), dw_.get(), ddx.get(), ddw.get(), ddb.get()) ==
              cudaSuccess);
      CHECK(scaled_error(dy_.download(), y_ref) <= 1e-5);
      CHECK(scaled_error(ddx.download(), dx_ref) <= 1e-5);
      CHECK(scaled_error(ddw.download(), dw_ref) <= 1e-5);
      CHECK(scaled_error(ddb.download(), db_ref) <= 1e-5);
    }
}
