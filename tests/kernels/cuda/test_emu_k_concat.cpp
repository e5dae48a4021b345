// kernels/cuda/concat.cu under the SIMT emulator against kernels/concat.h.
// Copies and single additions: the results must be identical to the CPU
// kernel's. The forward fills a NaN-poisoned output from two inputs, so every
// element must be written; gradients start random, so the backward must add.
#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "kernels/concat.h"
#include "kernels/cuda/concat.h"
#include "tests/kernels/cuda/emu_util.h"

using namespace lk::emu_test;  // DeviceBuffer, scaled_error, uniform, NoLeaks, ...
using lk::emu_test::DeviceBuffer;
using lk::emu_test::scaled_error;

namespace {

// dst (n, ca + cb, hw) = concat(a (n, ca, hw), b (n, cb, hw)), then both
// backward slices. shift offsets every device pointer by one float (no float4).
void check_concat(int64_t n, int64_t ca, int64_t cb, int64_t hw, unsigned seed, int64_t shift = 0) {
  INFO("concat n " << n << " ca " << ca << " cb " << cb << " hw " << hw << " shift " << shift);
  const int64_t cd = ca + cb, na = n * ca * hw, nb = n * cb * hw, nd = n * cd * hw;
  const std::vector<float> a = uniform(na, seed, -1.f, 1.f), b = uniform(nb, seed + 1, -1.f, 1.f),
                           ddst = uniform(nd, seed + 2, -1.f, 1.f), da0 = uniform(na, seed + 3, -1.f, 1.f),
                           db0 = uniform(nb, seed + 4, -1.f, 1.f);
  std::vector<float> dst_ref(nd), da_ref = da0, db_ref = db0;
  lk::cpu::concat_fwd<float>(n, ca, cd, 0, hw, a.data(), dst_ref.data());
  lk::cpu::concat_fwd<float>(n, cb, cd, ca, hw, b.data(), dst_ref.data());
  lk::cpu::concat_bwd<float>(n, ca, cd, 0, hw, ddst.data(), da_ref.data());
  lk::cpu::concat_bwd<float>(n, cb, cd, ca, hw, ddst.data(), db_ref.data());

  DeviceBuffer<float> d_a(na + shift), d_b(nb + shift), d_dst(nd + shift), d_ddst(nd + shift), d_da(na + shift),
      d_db(nb + shift);
  const auto put = [&](DeviceBuffer<float>& d, const std::vector<float>& h) {
    return cudaMemcpy(d.get() + shift, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice);
  };
  const auto get = [&](const DeviceBuffer<float>& d) {
    std::vector<float> all = d.download();
    return std::vector<float>(all.begin() + shift, all.end());
  };
  REQUIRE(put(d_a, a) == cudaSuccess);
  REQUIRE(put(d_b, b) == cudaSuccess);
  REQUIRE(put(d_ddst, ddst) == cudaSuccess);
  REQUIRE(put(d_da, da0) == cudaSuccess);
  REQUIRE(put(d_db, db0) == cudaSuccess);
  REQUIRE(lk::cuda::concat_fwd(n, ca, cd, 0, hw, d_a.get() + shift, d_dst.get() + shift) == cudaSuccess);
  REQUIRE(lk::cuda::concat_fwd(n, cb, cd, ca, hw, d_b.get() + shift, d_dst.get() + shift) == cudaSuccess);
  CHECK(scaled_error(get(d_dst), dst_ref) == 0);
  REQUIRE(lk::cuda::concat_bwd(n, ca, cd, 0, hw, d_ddst.get() + shift, d_da.get() + shift) == cudaSuccess);
  REQUIRE(lk::cuda::concat_bwd(n, cb, cd, ca, hw, d_ddst.get() + shift, d_db.get() + shift) == cudaSuccess);
  CHECK(scaled_error(get(d_da), da_ref) == 0);
  CHECK(scaled_error(get(d_db), db_ref) == 0);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

}  // namespace

TEST_CASE("emu concat: matches concat_* on the shape grid", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 100;
  for (int64_t n : {1, 3})
    for (int64_t c : {1, 3, 17, 64}) {
      check_concat(n, c, 5, 13 * 11, seed += 10);  // scalar path
      check_concat(n, 3, c, 4 * 4, seed += 10);    // float4 path
    }
}

TEST_CASE("emu concat: misaligned pointers, long blocks, single channels", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 1000;
  check_concat(2, 3, 2, 16, seed += 10, 1);        // hw % 4 == 0 but pointers off by one float
  check_concat(2, 1, 1, 1, seed += 10);            // one element per block
  check_concat(1, 7, 4, 200 * 201, seed += 10);    // over 1024 chunks of 256: the grid-stride loop wraps
  check_concat(1, 7, 4, 200 * 200, seed += 10);    // ... with float4
}

TEST_CASE("emu concat: in threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  check_concat(2, 3, 4, 7 * 9, 3000);
}

TEST_CASE("emu concat: empty and invalid sizes", "[emu]") {
  NoLeaks no_leaks;
  CHECK(lk::cuda::concat_fwd<float>(0, 3, 5, 0, 16, nullptr, nullptr) == cudaSuccess);
  CHECK(lk::cuda::concat_bwd<float>(2, 3, 5, 3, 16, nullptr, nullptr) == cudaErrorInvalidValue);  // past c_dst
  CHECK(lk::cuda::concat_fwd<float>(2, 3, 5, -1, 16, nullptr, nullptr) == cudaErrorInvalidValue);
}
