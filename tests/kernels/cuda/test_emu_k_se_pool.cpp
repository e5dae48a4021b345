// kernels/cuda/se_pool.cu (SE squeeze = global average pooling, and the
// scale-apply y = x * s[n, c]) run by the SIMT emulator against
// kernels/global_avg_pool.h and kernels/binary.h, through cudaMalloc/cudaMemcpy
// (NaN-poisoned, guarded). Value-scaled errors <= 1e-5; the plane sums (z, ds)
// are compared with the double instantiation of the CPU kernels (the CPU float
// kernels add serially in float, whose own error would dominate).
#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/binary.h"
#include "kernels/cuda/se_pool.h"
#include "kernels/global_avg_pool.h"
#include "tests/kernels/cuda/emu_util.h"

using lk::BinaryOp;
using lk::Dims4;
using namespace lk::emu_test;  // DeviceBuffer, scaled_error, uniform, NoLeaks, ...
using lk::emu_test::DeviceBuffer;
using lk::emu_test::scaled_error;

namespace {

constexpr double kTol = 1e-5;

struct Case {
  int64_t n, c, hw;
  bool with_dz = false, with_dx = true, with_ds = true;
};

void check_se(const Case& k, unsigned seed) {
  INFO("se n " << k.n << " c " << k.c << " hw " << k.hw << " dz " << k.with_dz << " dx " << k.with_dx << " ds "
               << k.with_ds);
  const int64_t planes = k.n * k.c, hw = k.hw;
  const size_t sz = static_cast<size_t>(planes * hw), ps = static_cast<size_t>(planes);
  // x offset from 0: the mean is not lost in cancellation.
  const std::vector<float> x = uniform(sz, seed, -0.5f, 1.5f), s = uniform(ps, seed + 1, 0.f, 1.f),
                           dy = uniform(sz, seed + 2, -1.f, 1.f), dx0 = uniform(sz, seed + 3, -1.f, 1.f),
                           ds0 = uniform(ps, seed + 4, -1.f, 1.f), dz = uniform(ps, seed + 5, -2.f, 2.f);
  const std::vector<double> xd = to_double(x), dyd = to_double(dy);

  std::vector<double> z_ref(ps);
  lk::cpu::global_avg_pool_fwd<double>(planes, hw, xd.data(), z_ref.data());
  const Dims4 full{k.n, k.c, 1, hw}, per_plane{k.n, k.c, 1, 1};
  std::vector<float> y_ref(sz), dx_ref = dx0;
  lk::cpu::binary_fwd<float>(BinaryOp::Mul, full, x.data(), full, s.data(), per_plane, y_ref.data());
  lk::cpu::binary_bwd<float>(BinaryOp::Mul, full, dy.data(), full, s.data(), per_plane, dx_ref.data());
  if (k.with_dz) lk::cpu::global_avg_pool_bwd<float>(planes, hw, dz.data(), dx_ref.data());
  std::vector<double> ds_ref = to_double(ds0);
  lk::cpu::binary_bwd<double>(BinaryOp::Mul, full, dyd.data(), per_plane, xd.data(), full, ds_ref.data());

  DeviceBuffer<float> d_x(x), d_s(s), d_dy(dy), d_dx(dx0), d_ds(ds0), d_dz(dz), d_z(ps), d_y(sz), d_dx2(dx0);
  REQUIRE(lk::cuda::se_squeeze_fwd(planes, hw, d_x.get(), d_z.get()) == cudaSuccess);
  CHECK(scaled_error(d_z.download(), to_float(z_ref)) <= kTol);
  REQUIRE(lk::cuda::se_scale_fwd(planes, hw, d_x.get(), d_s.get(), d_y.get()) == cudaSuccess);
  CHECK(scaled_error(d_y.download(), y_ref) <= kTol);
  REQUIRE(lk::cuda::se_scale_bwd(planes, hw, d_dy.get(), d_x.get(), d_s.get(), k.with_dz ? d_dz.get() : nullptr,
                                 k.with_dx ? d_dx.get() : nullptr, k.with_ds ? d_ds.get() : nullptr) == cudaSuccess);
  CHECK(scaled_error(d_dx.download(), k.with_dx ? dx_ref : dx0) <= kTol);
  CHECK(scaled_error(d_ds.download(), k.with_ds ? to_float(ds_ref) : ds0) <= kTol);

  // The squeeze's backward on its own: dx += dz / hw.
  std::vector<float> dx2_ref = dx0;
  lk::cpu::global_avg_pool_bwd<float>(planes, hw, dz.data(), dx2_ref.data());
  REQUIRE(lk::cuda::se_squeeze_bwd(planes, hw, d_dz.get(), d_dx2.get()) == cudaSuccess);
  CHECK(scaled_error(d_dx2.download(), dx2_ref) <= kTol);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

}  // namespace

TEST_CASE("emu se_pool: squeeze and scale-apply, one warp per plane, on the shape grid", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 1;
  for (int64_t n : {1, 3})
    for (int64_t c : {1, 3, 17, 64})
      for (bool with_dz : {false, true}) check_se({n, c, 13 * 11, with_dz}, seed += 7);
  check_se({1, 9, 1024, true}, seed += 7);  // the largest warp-mode plane; 9 planes: a partly used block
  check_se({2, 5, 7}, seed += 7);           // planes smaller than a warp
}

TEST_CASE("emu se_pool: one block per plane for large planes", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 100;
  for (int64_t n : {1, 3})
    for (int64_t c : {1, 3}) check_se({n, c, 45 * 47, true}, seed += 7);
  check_se({1, 2, 1025}, seed += 7);  // just past the warp-mode limit
}

TEST_CASE("emu se_pool: backward with dx or ds not requested", "[emu]") {
  NoLeaks no_leaks;
  check_se({2, 3, 143, true, false, true}, 200);
  check_se({2, 3, 143, false, true, false}, 210);
  check_se({2, 3, 2000, true, true, false}, 220);
  check_se({2, 3, 2000, false, false, true}, 230);
}

TEST_CASE("emu se_pool: threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  check_se({1, 10, 143, true}, 300);
  check_se({1, 2, 1500, true}, 310);
}

TEST_CASE("emu se_pool: empty and invalid sizes", "[emu]") {
  CHECK(lk::cuda::se_squeeze_fwd(0, 10, nullptr, nullptr) == cudaSuccess);
  CHECK(lk::cuda::se_scale_bwd(4, 0, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr) == cudaSuccess);
  CHECK(lk::cuda::se_scale_fwd(-1, 10, nullptr, nullptr, nullptr) == cudaErrorInvalidValue);
}
