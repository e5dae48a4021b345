// The data-movement kernels in bf16 and f16 storage (kernels/cuda/{concat,
// pooling,upsample}.cu, float arithmetic) under the SIMT emulator against the
// float CPU kernels run on the same rounded inputs. Copies and maxima are
// exact (a 16-bit input is a float); a sum, a mean or an interpolation
// rounded once to T is within storage_tol<T>() (emu_util.h) of the float
// result, scaled by its largest value. Outputs start NaN-poisoned; gradients
// start random, so the backward passes must add.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/concat.h"
#include "kernels/cuda/concat.h"
#include "kernels/cuda/pooling.h"
#include "kernels/cuda/upsample.h"
#include "kernels/global_avg_pool.h"
#include "kernels/max_pool2d.h"
#include "kernels/upsample.h"
#include "tests/kernels/cuda/emu_util.h"

using namespace lk::emu_test;
using lk::emu_test::DeviceBuffer;
using lk::emu_test::scaled_error;

namespace {

template <typename T>
std::vector<float> fetch(const DeviceBuffer<T>& d) {
  return as_float(d.download());
}

template <typename T>
std::vector<T> poisoned(size_t n) {
  return store<T>(std::vector<float>(n, NAN));
}

// dst (n, ca + cb, hw) from a and b, then both backward slices.
template <typename T>
void check_concat(int64_t n, int64_t ca, int64_t cb, int64_t hw, unsigned seed) {
  const int64_t cd = ca + cb, na = n * ca * hw, nb = n * cb * hw, nd = n * cd * hw;
  const std::vector<float> a = rounded<T>(uniform(na, seed, -1.f, 1.f)), b = rounded<T>(uniform(nb, seed + 1, -1.f, 1.f)),
                           ddst = rounded<T>(uniform(nd, seed + 2, -1.f, 1.f)),
                           da0 = rounded<T>(uniform(na, seed + 3, -1.f, 1.f));
  std::vector<float> dst_ref(nd), da_ref = da0;
  lk::cpu::concat_fwd<float>(n, ca, cd, 0, hw, a.data(), dst_ref.data());
  lk::cpu::concat_fwd<float>(n, cb, cd, ca, hw, b.data(), dst_ref.data());
  lk::cpu::concat_bwd<float>(n, ca, cd, 0, hw, ddst.data(), da_ref.data());

  DeviceBuffer<T> d_a(store<T>(a)), d_b(store<T>(b)), d_dst(poisoned<T>(nd)), d_ddst(store<T>(ddst)),
      d_da(store<T>(da0));
  REQUIRE(lk::cuda::concat_fwd(n, ca, cd, int64_t{0}, hw, d_a.get(), d_dst.get()) == cudaSuccess);
  REQUIRE(lk::cuda::concat_fwd(n, cb, cd, ca, hw, d_b.get(), d_dst.get()) == cudaSuccess);
  CHECK(scaled_error(fetch(d_dst), dst_ref) == 0);
  REQUIRE(lk::cuda::concat_bwd(n, ca, cd, int64_t{0}, hw, d_ddst.get(), d_da.get()) == cudaSuccess);
  CHECK(scaled_error(fetch(d_da), da_ref) <= storage_tol<T>());
  CHECK(scaled_error(fetch(d_da), da_ref) > 0);  // the sums really rounded to T
}

template <typename T>
void check_pools(int64_t planes, int64_t h, int64_t w, unsigned seed) {
  const int64_t hw = h * w, oh = h / 2, ow = w / 2, ny = planes * oh * ow;
  const std::vector<float> x = rounded<T>(uniform(planes * hw, seed, -1.f, 3.f)),
                           dx0 = rounded<T>(uniform(planes * hw, seed + 1, -1.f, 1.f)),
                           gdy = rounded<T>(uniform(planes, seed + 2, -1.f, 1.f)),
                           mdy = rounded<T>(uniform(ny, seed + 3, -1.f, 1.f));
  std::vector<float> g_ref(planes), gdx_ref = dx0, m_ref(ny), mdx_ref = dx0;
  std::vector<int32_t> idx_ref(ny);
  lk::cpu::global_avg_pool_fwd<float>(planes, hw, x.data(), g_ref.data());
  lk::cpu::global_avg_pool_bwd<float>(planes, hw, gdy.data(), gdx_ref.data());
  lk::cpu::max_pool2d_fwd<float>(planes, h, w, 2, 2, x.data(), m_ref.data(), idx_ref.data());
  lk::cpu::max_pool2d_bwd<float>(planes, h, w, 2, 2, mdy.data(), idx_ref.data(), mdx_ref.data());

  DeviceBuffer<T> d_x(store<T>(x)), d_g(poisoned<T>(planes)), d_gdy(store<T>(gdy)), d_gdx(store<T>(dx0)),
      d_m(poisoned<T>(ny)), d_mdy(store<T>(mdy)), d_mdx(store<T>(dx0));
  DeviceBuffer<int32_t> d_idx(ny);
  REQUIRE(lk::cuda::global_avg_pool_fwd(planes, hw, d_x.get(), d_g.get()) == cudaSuccess);
  CHECK(scaled_error(fetch(d_g), g_ref) <= storage_tol<T>());
  REQUIRE(lk::cuda::global_avg_pool_bwd(planes, hw, d_gdy.get(), d_gdx.get()) == cudaSuccess);
  CHECK(scaled_error(fetch(d_gdx), gdx_ref) <= storage_tol<T>());
  REQUIRE(lk::cuda::max_pool2d_fwd(planes, h, w, int64_t{2}, int64_t{2}, d_x.get(), d_m.get(), d_idx.get()) ==
          cudaSuccess);
  CHECK(scaled_error(fetch(d_m), m_ref) == 0);
  CHECK(d_idx.download() == idx_ref);
  REQUIRE(lk::cuda::max_pool2d_bwd(planes, h, w, int64_t{2}, int64_t{2}, d_mdy.get(), d_idx.get(), d_mdx.get()) ==
          cudaSuccess);
  CHECK(scaled_error(fetch(d_mdx), mdx_ref) <= storage_tol<T>());
}

template <typename T>
void check_upsample(lk::UpsampleMode mode, int64_t planes, int64_t h, int64_t w, int64_t f, unsigned seed) {
  const int64_t nx = planes * h * w, ny = nx * f * f;
  const std::vector<float> x = rounded<T>(uniform(nx, seed, -1.f, 1.f)), dy = rounded<T>(uniform(ny, seed + 1, -1.f, 1.f)),
                           dx0 = rounded<T>(uniform(nx, seed + 2, -1.f, 1.f));
  std::vector<float> y_ref(ny), dx_ref = dx0;
  lk::cpu::upsample_fwd<float>(mode, planes, h, w, f, x.data(), y_ref.data());
  lk::cpu::upsample_bwd<float>(mode, planes, h, w, f, dy.data(), dx_ref.data());
  DeviceBuffer<T> d_x(store<T>(x)), d_y(poisoned<T>(ny)), d_dy(store<T>(dy)), d_dx(store<T>(dx0));
  REQUIRE(lk::cuda::upsample_fwd(mode, planes, h, w, f, d_x.get(), d_y.get()) == cudaSuccess);
  CHECK(scaled_error(fetch(d_y), y_ref) <= (mode == lk::UpsampleMode::Nearest ? 0.0 : storage_tol<T>()));
  REQUIRE(lk::cuda::upsample_bwd(mode, planes, h, w, f, d_dy.get(), d_dx.get()) == cudaSuccess);
  CHECK(scaled_error(fetch(d_dx), dx_ref) <= storage_tol<T>());
}

}  // namespace

TEMPLATE_TEST_CASE("emu concat, pooling and upsampling in 16-bit storage match the float kernels", "[emu]", lk::bf16,
                   lk::f16) {
  NoLeaks no_leaks;
  check_concat<TestType>(2, 3, 5, 7 * 9, 10);
  check_pools<TestType>(5, 10, 12, 20);
  for (lk::UpsampleMode mode : {lk::UpsampleMode::Nearest, lk::UpsampleMode::Bilinear})
    for (int64_t f : {2, 3}) check_upsample<TestType>(mode, 3, 5, 6, f, 30 + static_cast<unsigned>(f));
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

TEST_CASE("emu concat, pooling and upsampling in 16-bit storage: threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  check_concat<lk::bf16>(2, 2, 3, 5 * 7, 50);
  check_pools<lk::f16>(2, 6, 8, 60);  // the global pool's shared-memory reduction
  check_upsample<lk::bf16>(lk::UpsampleMode::Bilinear, 2, 3, 4, 3, 70);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}
