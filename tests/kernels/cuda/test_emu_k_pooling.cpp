// kernels/cuda/pooling.cu under the SIMT emulator against
// kernels/global_avg_pool.h (reference in double: value-scaled error <= 1e-5)
// and kernels/max_pool2d.h (float reference: values and indices must be
// identical, ties and NaNs included; the backward adds the same terms in the
// same order). Outputs start NaN-poisoned (indices -1); gradients start
// random, so the backward must add.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cuda/pooling.h"
#include "kernels/global_avg_pool.h"
#include "kernels/max_pool2d.h"
#include "tests/kernels/cuda/emu_util.h"

using namespace lk::emu_test;  // DeviceBuffer, scaled_error, uniform, NoLeaks, ...
using lk::emu_test::DeviceBuffer;
using lk::emu_test::scaled_error;

namespace {

constexpr double kTol = 1e-5;

// Equal, or both NaN.
size_t mismatches(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return SIZE_MAX;
  size_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i) bad += !(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])));
  return bad;
}

void check_gap(int64_t planes, int64_t hw, unsigned seed) {
  INFO("global_avg_pool planes " << planes << " hw " << hw);
  const std::vector<float> x = uniform(planes * hw, seed, -1.f, 3.f), dy = uniform(planes, seed + 1, -1.f, 1.f),
                           dx0 = uniform(planes * hw, seed + 2, -1.f, 1.f);
  std::vector<double> y_ref(planes), dx_ref = widen(dx0);
  const std::vector<double> x_d = widen(x), dy_d = widen(dy);
  lk::cpu::global_avg_pool_fwd<double>(planes, hw, x_d.data(), y_ref.data());
  lk::cpu::global_avg_pool_bwd<double>(planes, hw, dy_d.data(), dx_ref.data());

  DeviceBuffer<float> d_x(x), d_y(planes), d_dy(dy), d_dx(dx0);
  REQUIRE(lk::cuda::global_avg_pool_fwd(planes, hw, d_x.get(), d_y.get()) == cudaSuccess);
  CHECK(scaled_error(d_y.download(), narrow(y_ref)) <= kTol);
  REQUIRE(lk::cuda::global_avg_pool_bwd(planes, hw, d_dy.get(), d_dx.get()) == cudaSuccess);
  CHECK(scaled_error(d_dx.download(), narrow(dx_ref)) <= kTol);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

// Values on a coarse grid (many ties) and, with nan_every > 0, some NaNs.
void check_max_pool(int64_t planes, int64_t h, int64_t w, int64_t k, int64_t stride, unsigned seed,
                    int nan_every = 0) {
  INFO("max_pool2d planes " << planes << " " << h << "x" << w << " k " << k << " stride " << stride << " nan_every "
                            << nan_every);
  const int64_t oh = (h - k) / stride + 1, ow = (w - k) / stride + 1, nx = planes * h * w, ny = planes * oh * ow;
  std::vector<float> x = uniform(nx, seed, -4.f, 4.f);
  for (float& v : x) v = std::round(v);
  if (nan_every > 0)
    for (int64_t i = 3; i < nx; i += nan_every) x[i] = NAN;
  const std::vector<float> dy = uniform(ny, seed + 1, -1.f, 1.f), dx0 = uniform(nx, seed + 2, -1.f, 1.f);

  std::vector<float> y_ref(ny), dx_ref = dx0;
  std::vector<int32_t> idx_ref(ny);
  lk::cpu::max_pool2d_fwd<float>(planes, h, w, k, stride, x.data(), y_ref.data(), idx_ref.data());
  lk::cpu::max_pool2d_bwd<float>(planes, h, w, k, stride, dy.data(), idx_ref.data(), dx_ref.data());

  DeviceBuffer<float> d_x(x), d_y(ny), d_dy(dy), d_dx(dx0);
  DeviceBuffer<int32_t> d_idx(ny);
  REQUIRE(lk::cuda::max_pool2d_fwd(planes, h, w, k, stride, d_x.get(), d_y.get(), d_idx.get()) == cudaSuccess);
  CHECK(mismatches(d_y.download(), y_ref) == 0);
  CHECK(d_idx.download() == idx_ref);
  REQUIRE(lk::cuda::max_pool2d_bwd(planes, h, w, k, stride, d_dy.get(), d_idx.get(), d_dx.get()) == cudaSuccess);
  CHECK(mismatches(d_dx.download(), dx_ref) == 0);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

}  // namespace

TEST_CASE("emu pooling: global average pool matches global_avg_pool_* on the shape grid", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 100;
  for (int64_t n : {1, 3})
    for (int64_t c : {1, 3, 17, 64}) check_gap(n * c, 13 * 11, seed += 10);
  check_gap(3, 1, seed += 10);        // 1x1 planes
  check_gap(5, 67 * 63, seed += 10);  // a block per plane
  check_gap(2, 4096, seed += 10);     // exactly the block-per-plane threshold
  check_gap(9, 31, seed += 10);       // planes not a multiple of a block's warps
}

TEST_CASE("emu pooling: max pool matches max_pool2d_* on the shape grid", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 1000;
  for (int64_t n : {1, 3})
    for (int64_t c : {1, 3, 17, 64})
      for (int64_t k : {2, 3}) check_max_pool(n * c, 13, 11, k, 2, seed += 10);  // k2s2 scatters, k3s2 gathers
}

TEST_CASE("emu pooling: max pool windows, strides, ties and NaNs", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 2000;
  const int64_t geoms[][2] = {{2, 1}, {3, 1}, {3, 3}, {2, 3}, {4, 2}, {5, 5}, {1, 1}};
  for (const auto& g : geoms) {
    check_max_pool(3, 13, 11, g[0], g[1], seed += 10);
    check_max_pool(2, 9, 14, g[0], g[1], seed += 10, 5);  // NaNs (several per window at times)
  }
  check_max_pool(2, 2, 2, 2, 2, seed += 10);    // one window
  check_max_pool(1, 37, 45, 3, 2, seed += 10);  // several blocks per plane
}

TEST_CASE("emu pooling: in threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  check_gap(3, 33, 3000);
  check_gap(2, 4100, 3010);
  check_max_pool(2, 9, 8, 3, 2, 3020);
}

TEST_CASE("emu pooling: empty and invalid sizes", "[emu]") {
  NoLeaks no_leaks;
  CHECK(lk::cuda::global_avg_pool_fwd<float>(0, 5, nullptr, nullptr) == cudaSuccess);
  CHECK(lk::cuda::global_avg_pool_fwd<float>(2, 0, nullptr, nullptr) == cudaErrorInvalidValue);
  CHECK(lk::cuda::global_avg_pool_bwd<float>(2, 0, nullptr, nullptr) == cudaSuccess);
  CHECK(lk::cuda::global_avg_pool_bwd<float>(-1, 3, nullptr, nullptr) == cudaErrorInvalidValue);
  CHECK(lk::cuda::max_pool2d_fwd<float>(0, 4, 4, 2, 2, nullptr, nullptr, nullptr) == cudaSuccess);
  CHECK(lk::cuda::max_pool2d_fwd<float>(1, 1, 4, 2, 2, nullptr, nullptr, nullptr) == cudaErrorInvalidValue);
  CHECK(lk::cuda::max_pool2d_fwd<float>(1, 4, 4, 2, 0, nullptr, nullptr, nullptr) == cudaErrorInvalidValue);
  CHECK(lk::cuda::max_pool2d_bwd<float>(1, 4, 4, 0, 1, nullptr, nullptr, nullptr) == cudaErrorInvalidValue);
}
