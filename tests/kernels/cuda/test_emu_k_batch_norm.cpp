// kernels/cuda/batch_norm.cu under the SIMT emulator against kernels/batch_norm.h.
// The references run the CPU template in double (it accumulates in double
// anyway), so the float kernels are held to the exact result.
//
// Tolerance: value-scaled error max|a-b| / max|ref| <= 1e-5, the same as the
// other kernels. The kernels sum in float (per-thread partials over
// n*hw / blockDim elements, then a tree): the relative error of a channel sum
// is about (n*hw / blockDim + log2 blockDim) * 6e-8 in the worst case, < 1e-6
// for these shapes; the channel offsets below (|mean| up to about 14 std)
// amplify the mean's relative error into y by |mean| / std, still below 1e-5
// (measured: at most 8e-7).
// Outputs start NaN-poisoned; gradients start random, so the backward must add.
#include <catch2/catch.hpp>
#include <algorithm>
#include <random>
#include <tuple>
#include <vector>

#include "kernels/batch_norm.h"
#include "kernels/cuda/batch_norm.h"
#include "tests/kernels/cuda/emu_util.h"

using namespace lk::emu_test;  // DeviceBuffer, scaled_error, uniform, NoLeaks, ...
using lk::emu_test::DeviceBuffer;
using lk::emu_test::scaled_error;

namespace {

constexpr double kTol = 1e-5;
constexpr double kMomentum = 0.1, kEps = 1e-5;

// x with a per-channel offset and spread, so channels differ and the mean is
// not small against the standard deviation.
std::vector<float> make_input(int64_t n, int64_t c, int64_t hw, unsigned seed) {
  std::vector<float> x = uniform(n * c * hw, seed, -1.f, 1.f);
  const std::vector<float> off = uniform(c, seed + 1, -4.f, 4.f), spread = uniform(c, seed + 2, 0.5f, 2.f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t k = 0; k < hw; ++k) {
        float& v = x[(i * c + ch) * hw + k];
        v = off[ch] + spread[ch] * v;
      }
  return x;
}

void check_fwd(int64_t n, int64_t c, int64_t hw, bool training, unsigned seed) {
  INFO("batch_norm_fwd n " << n << " c " << c << " hw " << hw << " training " << training);
  const int64_t nx = n * c * hw;
  const std::vector<float> x = make_input(n, c, hw, seed), gamma = uniform(c, seed + 3, 0.5f, 1.5f),
                           beta = uniform(c, seed + 4, -1.f, 1.f), rm0 = uniform(c, seed + 5, -1.f, 1.f),
                           rv0 = uniform(c, seed + 6, 0.5f, 2.f);

  std::vector<double> y_ref(nx), rm_ref = widen(rm0), rv_ref = widen(rv0), sm_ref(c), si_ref(c);
  const std::vector<double> x_d = widen(x), g_d = widen(gamma), b_d = widen(beta);
  lk::cpu::batch_norm_fwd<double>(n, c, hw, x_d.data(), g_d.data(), b_d.data(), rm_ref.data(), rv_ref.data(),
                                  training, kMomentum, kEps, y_ref.data(), sm_ref.data(), si_ref.data());

  DeviceBuffer<float> d_x(x), d_g(gamma), d_b(beta), d_rm(rm0), d_rv(rv0), d_y(nx), d_sm(c), d_si(c);
  const size_t ws = lk::cuda::batch_norm_workspace_bytes(n, c, hw);
  DeviceBuffer<double> d_ws(ws / sizeof(double));
  REQUIRE(lk::cuda::batch_norm_fwd(n, c, hw, d_x.get(), d_g.get(), d_b.get(), d_rm.get(), d_rv.get(), training,
                                   kMomentum, kEps, d_y.get(), d_sm.get(), d_si.get(), d_ws.get(), ws) == cudaSuccess);
  CHECK(scaled_error(d_y.download(), narrow(y_ref)) <= kTol);
  CHECK(scaled_error(d_sm.download(), narrow(sm_ref)) <= kTol);
  CHECK(scaled_error(d_si.download(), narrow(si_ref)) <= kTol);
  CHECK(scaled_error(d_rm.download(), narrow(rm_ref)) <= kTol);
  CHECK(scaled_error(d_rv.download(), narrow(rv_ref)) <= kTol);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

// want: which gradients to request (dx, dgamma, dbeta). accumulate: the gradients are
// added to (it starts random), else written (it starts NaN-poisoned).
void check_bwd(int64_t n, int64_t c, int64_t hw, bool training, bool want_dx, bool want_dg, bool want_db,
               unsigned seed, bool accumulate = true) {
  INFO("batch_norm_bwd n " << n << " c " << c << " hw " << hw << " training " << training << " dx " << want_dx
                           << " dgamma " << want_dg << " dbeta " << want_db << " accumulate " << accumulate);
  const int64_t nx = n * c * hw;
  const std::vector<float> x = make_input(n, c, hw, seed), gamma = uniform(c, seed + 3, 0.5f, 1.5f),
                           dy = uniform(nx, seed + 4, -1.f, 1.f), dx0 = uniform(nx, seed + 5, -1.f, 1.f),
                           dg0 = uniform(c, seed + 6, -1.f, 1.f), db0 = uniform(c, seed + 7, -1.f, 1.f);
  // The saved statistics as the forward would leave them (float), shared by both sides.
  std::vector<float> sm(c), si(c);
  for (int64_t ch = 0; ch < c; ++ch) {
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < hw; ++k) s += x[(i * c + ch) * hw + k];
    const double mean = s / static_cast<double>(n * hw);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < hw; ++k) ss += (x[(i * c + ch) * hw + k] - mean) * (x[(i * c + ch) * hw + k] - mean);
    sm[ch] = static_cast<float>(mean);
    si[ch] = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n * hw) + kEps));
  }

  std::vector<double> dx_ref = widen(dx0), dg_ref = widen(dg0), db_ref = widen(db0);
  if (!accumulate) {
    std::fill(dx_ref.begin(), dx_ref.end(), 0.0);
    std::fill(dg_ref.begin(), dg_ref.end(), 0.0);
    std::fill(db_ref.begin(), db_ref.end(), 0.0);
  }
  const std::vector<double> x_d = widen(x), g_d = widen(gamma), dy_d = widen(dy), sm_d = widen(sm), si_d = widen(si);
  lk::cpu::batch_norm_bwd<double>(n, c, hw, dy_d.data(), x_d.data(), g_d.data(), sm_d.data(), si_d.data(), training,
                                  want_dx ? dx_ref.data() : nullptr, want_dg ? dg_ref.data() : nullptr,
                                  want_db ? db_ref.data() : nullptr);

  DeviceBuffer<float> d_x(x), d_g(gamma), d_dy(dy), d_sm(sm), d_si(si);
  // Poisoned: a written gradient must not read its old contents.
  DeviceBuffer<float> d_dx(nx), d_dg(c), d_db(c);
  if (accumulate || !want_dx) REQUIRE(d_dx.upload(dx0) == cudaSuccess);
  if (accumulate || !want_dg) REQUIRE(d_dg.upload(dg0) == cudaSuccess);
  if (accumulate || !want_db) REQUIRE(d_db.upload(db0) == cudaSuccess);
  const size_t ws = lk::cuda::batch_norm_workspace_bytes(n, c, hw);
  DeviceBuffer<double> d_ws(ws / sizeof(double));
  REQUIRE(lk::cuda::batch_norm_bwd(n, c, hw, d_dy.get(), d_x.get(), d_g.get(), d_sm.get(), d_si.get(), training,
                                   want_dx ? d_dx.get() : nullptr, want_dg ? d_dg.get() : nullptr,
                                   want_db ? d_db.get() : nullptr, d_ws.get(), ws, nullptr, accumulate, accumulate,
                                   accumulate) == cudaSuccess);
  // Unrequested gradients stay as they were (dx0 etc.), as in the reference.
  if (accumulate) {
    CHECK(scaled_error(d_dx.download(), narrow(dx_ref)) <= kTol);
    CHECK(scaled_error(d_dg.download(), narrow(dg_ref)) <= kTol);
    CHECK(scaled_error(d_db.download(), narrow(db_ref)) <= kTol);
  } else {  // the written ones (the others stay poisoned)
    if (want_dx) CHECK(scaled_error(d_dx.download(), narrow(dx_ref)) <= kTol);
    if (want_dg) CHECK(scaled_error(d_dg.download(), narrow(dg_ref)) <= kTol);
    if (want_db) CHECK(scaled_error(d_db.download(), narrow(db_ref)) <= kTol);
  }
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

}  // namespace

TEST_CASE("emu batch_norm: forward matches batch_norm_fwd on the shape grid", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 100;
  for (int64_t n : {1, 3})
    for (int64_t c : {1, 3, 17, 64})
      for (bool training : {true, false}) check_fwd(n, c, 13 * 11, training, seed += 10);
}

TEST_CASE("emu batch_norm: backward matches batch_norm_bwd on the shape grid", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 1000;
  for (int64_t n : {1, 3})
    for (int64_t c : {1, 3, 17, 64})
      for (bool training : {true, false}) check_bwd(n, c, 13 * 11, training, true, true, true, seed += 10);
}

TEST_CASE("emu batch_norm: block sizes, short planes and partial gradients", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 2000;
  // n*hw from 3 to 8601: 128, 256 and 512 threads; hw below the block size
  // (several images per step, with and without carry), hw == 1.
  for (int64_t hw : {1, 5, 63, 37 * 41, 61 * 47})
    for (bool training : {true, false}) {
      check_fwd(3, 3, hw, training, seed += 10);
      check_bwd(3, 3, hw, training, true, true, true, seed += 10);
    }
  check_fwd(2, 1, 1, true, seed += 10);  // two values: the smallest training batch
  for (bool training : {true, false}) {
    check_bwd(2, 5, 7 * 9, training, true, false, false, seed += 10);
    check_bwd(2, 5, 7 * 9, training, false, true, false, seed += 10);
    check_bwd(2, 5, 7 * 9, training, false, false, true, seed += 10);
  }
}

TEST_CASE("emu batch_norm: gradients written instead of added", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 2500;
  for (bool training : {true, false}) {
    check_bwd(2, 3, 11 * 13, training, true, true, true, seed += 10, false);
    check_bwd(2, 3, 61 * 47, training, true, false, false, seed += 10, false);  // two chunks per plane
  }
}

TEST_CASE("emu batch_norm: planes of many chunks, far from zero", "[emu]") {
  NoLeaks no_leaks;
  // 64x64 planes: 2 chunks of 2048 elements each; with 3 images 6 partials
  // per channel. The channel offsets (make_input) exercise the shifted sums.
  check_fwd(3, 2, 64 * 64, true, 2600);
  check_bwd(3, 2, 64 * 64, true, true, true, true, 2610);
}

TEST_CASE("emu batch_norm: in threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  check_fwd(2, 2, 9 * 7, true, 3000);
  check_bwd(2, 2, 9 * 7, true, true, true, true, 3010);
}

TEST_CASE("emu batch_norm: empty and invalid sizes", "[emu]") {
  NoLeaks no_leaks;
  DeviceBuffer<double> ws(64);
  const size_t bytes = 64 * sizeof(double);
  CHECK(lk::cuda::batch_norm_fwd<float>(0, 3, 4, nullptr, nullptr, nullptr, nullptr, nullptr, true, 0.1, 1e-5, nullptr,
                                 nullptr, nullptr, nullptr, 0) == cudaSuccess);
  CHECK(lk::cuda::batch_norm_fwd<float>(1, 3, 1, nullptr, nullptr, nullptr, nullptr, nullptr, true, 0.1, 1e-5, nullptr,
                                 nullptr, nullptr, ws.get(), bytes) == cudaErrorInvalidValue);  // one value per channel
  CHECK(lk::cuda::batch_norm_fwd<float>(-1, 3, 4, nullptr, nullptr, nullptr, nullptr, nullptr, false, 0.1, 1e-5, nullptr,
                                 nullptr, nullptr, nullptr, 0) == cudaErrorInvalidValue);
  CHECK(lk::cuda::batch_norm_bwd<float>(2, 3, 4, nullptr, nullptr, nullptr, nullptr, nullptr, true, nullptr, nullptr,
                                 nullptr, nullptr, 0) == cudaSuccess);  // nothing requested
  // Training needs the workspace: missing or too small is refused, nothing launched.
  const size_t need = lk::cuda::batch_norm_workspace_bytes(4, 8, 4096);
  CHECK(need > bytes);
  CHECK(lk::cuda::batch_norm_fwd<float>(4, 8, 4096, nullptr, nullptr, nullptr, nullptr, nullptr, true, 0.1, 1e-5, nullptr,
                                 nullptr, nullptr, ws.get(), bytes) == cudaErrorInvalidValue);
  CHECK(lk::cuda::batch_norm_bwd<float>(4, 8, 4096, nullptr, nullptr, nullptr, nullptr, nullptr, true, nullptr, nullptr,
                                 reinterpret_cast<float*>(ws.get()), nullptr, 0) == cudaErrorInvalidValue);
}

// Synchronised batch norm's pieces against kernels/batch_norm.h: the three
// kinds of sums (double on both sides, from the same float inputs, in another
// order: to 1e-10 of their scale) and dx from given means (float: kTol).
TEST_CASE("emu batch_norm: sync pieces (channel sums, dx from the whole batch's means)", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 4000;
  for (const auto& [n, c, hw] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {3, 3, 63}, {2, 17, 13 * 11},
                                 {3, 5, 61 * 47}}) {
    INFO("n " << n << " c " << c << " hw " << hw);
    const int64_t nx = n * c * hw;
    const std::vector<float> x = make_input(n, c, hw, seed += 10), dy = uniform(nx, seed + 1, -1.f, 1.f),
                             gamma = uniform(c, seed + 2, 0.5f, 1.5f), sm = uniform(c, seed + 3, -4.f, 4.f),
                             si = uniform(c, seed + 4, 0.5f, 2.f), dx0 = uniform(nx, seed + 5, -1.f, 1.f),
                             means_f = uniform(2 * c, seed + 6, -0.5f, 0.5f);
    const std::vector<double> means = widen(means_f);
    DeviceBuffer<float> d_x(x), d_dy(dy), d_g(gamma), d_sm(sm), d_si(si), d_dx(dx0), d_means(means_f);
    std::vector<double> mu(static_cast<size_t>(c));
    for (int64_t ch = 0; ch < c; ++ch) mu[static_cast<size_t>(ch)] = sm[static_cast<size_t>(ch)] + 0.25;
    DeviceBuffer<double> d_out(static_cast<size_t>(2 * c)), d_mu(mu);
    for (int mode = 0; mode < 3; ++mode) {  // sum x; sum (x - mean)^2; sum dy and sum dy*xhat
      INFO("mode " << mode);
      const size_t values = static_cast<size_t>((mode == 2 ? 2 : 1) * c);
      std::vector<double> ref(values);
      lk::cpu::batch_norm_sums<float>(n, c, hw, x.data(), mode == 1 ? mu.data() : nullptr,
                                      mode == 2 ? dy.data() : nullptr, sm.data(), si.data(), ref.data());
      REQUIRE(lk::cuda::batch_norm_sums(n, c, hw, d_x.get(), mode == 1 ? d_mu.get() : nullptr,
                                        mode == 2 ? d_dy.get() : nullptr, d_sm.get(), d_si.get(),
                                        d_out.get()) == cudaSuccess);
      std::vector<double> got = d_out.download();
      got.resize(values);
      double scale = 0, diff = 0;
      for (size_t i = 0; i < ref.size(); ++i)
        scale = std::max(scale, std::abs(ref[i])), diff = std::max(diff, std::abs(got[i] - ref[i]));
      CHECK(diff <= 1e-10 * std::max(scale, 1.0));
    }
    std::vector<float> dx_ref = dx0;
    lk::cpu::batch_norm_bwd_dx<float>(n, c, hw, dy.data(), x.data(), gamma.data(), sm.data(), si.data(), means.data(),
                                      dx_ref.data());
    REQUIRE(lk::cuda::batch_norm_bwd_dx(n, c, hw, d_dy.get(), d_x.get(), d_g.get(), d_sm.get(), d_si.get(),
                                        d_means.get(), d_dx.get()) == cudaSuccess);
    CHECK(scaled_error(d_dx.download(), dx_ref) <= kTol);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
  }
}
