// kernels/cuda/tversky.cu run by the SIMT emulator against kernels/tversky.h,
// through cudaMalloc/cudaMemcpy (NaN-poisoned, guarded). Value-scaled errors
// <= 1e-5: the forward is compared with the double instantiation of the CPU
// kernel (the soft counts are double sums on both sides; ours add float
// per-thread runs of at most a few probabilities, ~1e-7 relative), the
// backward with the float one from the same device-format stats.
#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cuda/tversky.h"
#include "kernels/softmax.h"
#include "kernels/tversky.h"
#include "tests/kernels/cuda/emu_util.h"

using lk::TverskyParams;
using namespace lk::emu_test;  // DeviceBuffer, scaled_error, uniform, NoLeaks, ...
using lk::emu_test::DeviceBuffer;
using lk::emu_test::scaled_error;

namespace {

constexpr double kTol = 1e-5;

std::vector<float> slice(const std::vector<float>& v, size_t from, size_t count) {
  return {v.begin() + static_cast<std::ptrdiff_t>(from), v.begin() + static_cast<std::ptrdiff_t>(from + count)};
}
void check_tversky(const TverskyParams& tp, int64_t n, int64_t c, int64_t hw, unsigned seed) {
  INFO("tversky n " << n << " c " << c << " hw " << hw << " alpha [" << tp.alpha_min << ", " << tp.alpha_max
                    << "] detach " << tp.detach_alpha);
  const size_t sz = static_cast<size_t>(n * c * hw);
  std::vector<float> p(sz);
  lk::cpu::softmax_fwd<float>(n, c, hw, uniform(sz, seed, -4.f, 4.f).data(), p.data());
  const std::vector<int32_t> t = labels(static_cast<size_t>(n * hw), c, seed + 1, c - 1);
  const std::vector<float> dp0 = uniform(sz, seed + 2, -1.f, 1.f);

  const std::vector<double> pd(p.begin(), p.end());
  std::vector<double> stats_d(4 * c);
  double loss_d = 0;
  REQUIRE(lk::cpu::tversky_fwd<double>(tp, n, c, hw, pd.data(), t.data(), &loss_d, stats_d.data()) == -1);

  const size_t ws_bytes = lk::cuda::tversky_workspace_bytes(n, c, hw);
  DeviceBuffer<float> d_p(p), d_loss(1), d_stats(4 * c), d_dp(dp0);
  DeviceBuffer<int32_t> d_t(t);
  DeviceBuffer<lk::cuda::LabelError> d_bad(std::vector<lk::cuda::LabelError>{{-1, -1}});
  DeviceBuffer<unsigned char> ws(ws_bytes);
  REQUIRE(lk::cuda::tversky_fwd(tp, n, c, hw, d_p.get(), d_t.get(), d_loss.get(), d_stats.get(), d_bad.get(), ws.get(),
                                ws_bytes) == cudaSuccess);
  const std::vector<float> stats = d_stats.download(), loss = d_loss.download();
  REQUIRE(stats.size() == static_cast<size_t>(4 * c));
  const std::vector<float> sref = to_float(stats_d);
  // Counts and alpha apart: the counts' scale would hide alpha's error.
  CHECK(scaled_error(slice(stats, 0, 3 * c), slice(sref, 0, 3 * c)) <= kTol);
  CHECK(scaled_error(slice(stats, 3 * c, c), slice(sref, 3 * c, c)) <= kTol);
  CHECK(scaled_error(loss, {static_cast<float>(loss_d)}) <= kTol);
  CHECK(d_bad.download().at(0).index == -1);  // nothing recorded
  // Reproducible to the bit.
  int64_t first_bad = 3;
  REQUIRE(lk::cuda::tversky_fwd_checked(tp, n, c, hw, d_p.get(), d_t.get(), d_loss.get(), d_stats.get(), &first_bad,
                                        ws.get(), ws_bytes) == cudaSuccess);
  CHECK(first_bad == -1);
  CHECK(std::bit_cast<uint32_t>(d_loss.download().at(0)) == std::bit_cast<uint32_t>(loss.at(0)));
  CHECK(d_stats.download() == stats);

  // Backward from the device's stats (device dloss): same g_y / g_n as the CPU.
  const float dloss = 1.3f;
  std::vector<float> dp_ref = dp0;
  lk::cpu::tversky_bwd<float>(tp, n, c, hw, &dloss, t.data(), stats.data(), dp_ref.data());
  DeviceBuffer<float> d_dloss(std::vector<float>{dloss});
  REQUIRE(lk::cuda::tversky_bwd(tp, n, c, hw, d_dloss.get(), d_t.get(), d_stats.get(), d_dp.get()) == cudaSuccess);
  CHECK(scaled_error(d_dp.download(), dp_ref) <= kTol);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

TverskyParams params(double lo, double hi, bool detach) {
  TverskyParams tp;
  tp.alpha_min = lo, tp.alpha_max = hi, tp.detach_alpha = detach;
  return tp;
}

}  // namespace

TEST_CASE("emu tversky: counts, alpha, loss and gradient on the shape grid", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 10;
  // c = 1: every pixel is class 0 with p = 1, so FP + FN = 0 and alpha = 0.5.
  for (int64_t n : {1, 3})
    for (int64_t c : {1, 3, 4, 17})
      for (bool detach : {true, false}) check_tversky(params(0.2, 0.8, detach), n, c, 13 * 11, seed += 3);
}

TEST_CASE("emu tversky: the alpha clamp active and inactive, both detach modes", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 200;
  for (bool detach : {true, false}) {
    check_tversky(params(0.45, 0.55, detach), 2, 4, 13 * 11, seed += 3);  // most classes clamped
    check_tversky(params(0.01, 0.99, detach), 2, 4, 13 * 11, seed += 3);  // the absent class only
  }
}

TEST_CASE("emu tversky: several chunks per plane", "[emu]") {
  NoLeaks no_leaks;
  // 6149 pixels: 4 chunks of 1538; 3 images.
  check_tversky(params(0.2, 0.8, false), 3, 4, 6149, 300);
}

TEST_CASE("emu tversky: threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  check_tversky(params(0.2, 0.8, false), 2, 3, 300, 400);
}

TEST_CASE("emu tversky: an out-of-range label is reported with its first index", "[emu]") {
  NoLeaks no_leaks;
  const int64_t n = 3, c = 4, hw = 5000;  // 3 chunks per plane
  const size_t sz = static_cast<size_t>(n * c * hw);
  const std::vector<float> p = uniform(sz, 1, 0.f, 1.f);
  std::vector<int32_t> t = labels(static_cast<size_t>(n * hw), c, 2, 0);
  t[12000] = -3, t[9999] = 4, t[14999] = 1000;
  float loss_ref = 0;
  std::vector<float> stats_ref(4 * c);
  REQUIRE(lk::cpu::tversky_fwd<float>(TverskyParams{}, n, c, hw, p.data(), t.data(), &loss_ref, stats_ref.data()) ==
          9999);
  const size_t ws_bytes = lk::cuda::tversky_workspace_bytes(n, c, hw);
  DeviceBuffer<float> d_p(p), d_loss(1), d_stats(4 * c);
  DeviceBuffer<int32_t> d_t(t);
  DeviceBuffer<lk::cuda::LabelError> d_bad(std::vector<lk::cuda::LabelError>{{-1, -1}});
  DeviceBuffer<unsigned char> ws(ws_bytes);
  int64_t first_bad = -1;
  CHECK(lk::cuda::tversky_fwd_checked(TverskyParams{}, n, c, hw, d_p.get(), d_t.get(), d_loss.get(), d_stats.get(),
                                      &first_bad, ws.get(), ws_bytes) == lk::cuda::kErrorBadLabel);
  CHECK(first_bad == 9999);
  CHECK(std::isnan(d_loss.download().at(0)));
  REQUIRE(lk::cuda::tversky_fwd(TverskyParams{}, n, c, hw, d_p.get(), d_t.get(), d_loss.get(), d_stats.get(),
                                d_bad.get(), ws.get(), ws_bytes) == cudaSuccess);
  CHECK(d_bad.download().at(0).index == 9999);
  CHECK(d_bad.download().at(0).label == 4);
  CHECK(lk::cuda::tversky_fwd(TverskyParams{}, n, c, hw, d_p.get(), d_t.get(), d_loss.get(), d_stats.get(),
                              d_bad.get(), ws.get(), ws_bytes - 8) == cudaErrorInvalidValue);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}
