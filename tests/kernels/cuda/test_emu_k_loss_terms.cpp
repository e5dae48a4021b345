// kernels/cuda/loss_terms.cu run by the SIMT emulator against
// kernels/loss_terms.h (the CPU composition of cross-entropy, softmax and
// Tversky): the fused CE + Tversky of one output, forward (loss, stats, two
// launches) and backward (one launch) in both gradient modes, a bad label
// reported through the device record; the weighted sum of terms, forward and
// backward in both modes. Value-scaled errors <= 1e-5 against the double CPU
// kernels for the forward, 1e-5 against the float ones for the backward.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/cuda/loss_terms.h"
#include "kernels/loss_terms.h"
#include "simt/runtime.h"
#include "tests/kernels/cuda/emu_util.h"

using lk::TverskyParams;
using namespace lk::emu_test;  // DeviceBuffer, scaled_error, uniform, labels, NoLeaks
using lk::emu_test::DeviceBuffer;
using lk::emu_test::scaled_error;

namespace {

constexpr double kTol = 1e-5;

void check_ce_tversky(const TverskyParams& tp, int64_t n, int64_t c, int64_t hw, bool weighted, unsigned seed) {
  INFO("ce_tversky n " << n << " c " << c << " hw " << hw << " detach " << tp.detach_alpha << " weighted " << weighted);
  const size_t sz = static_cast<size_t>(n * c * hw);
  const std::vector<float> z = uniform(sz, seed, -3.f, 3.f);
  const std::vector<int32_t> t = labels(static_cast<size_t>(n * hw), c, seed + 1, c - 1);
  std::vector<float> w = weighted ? uniform(static_cast<size_t>(c), seed + 2, 0.1f, 1.5f) : std::vector<float>(c, 1.f);
  const int64_t ns = lk::cpu::ce_tversky_stats(c);

  // The reference: the CPU composition in double.
  const std::vector<double> zd(z.begin(), z.end()), wd(w.begin(), w.end());
  std::vector<double> stats_d(static_cast<size_t>(ns));
  double loss_d = 0;
  REQUIRE(lk::cpu::ce_tversky_fwd<double>(tp, n, c, hw, zd.data(), t.data(), wd.data(), &loss_d, stats_d.data()) ==
          -1);

  const size_t ws_bytes = lk::cuda::ce_tversky_workspace_bytes(n, c, hw);
  DeviceBuffer<float> d_z(z), d_w(w), d_loss(1), d_stats(static_cast<size_t>(ns));
  DeviceBuffer<int32_t> d_t(t);
  DeviceBuffer<lk::cuda::LabelError> d_err(std::vector<lk::cuda::LabelError>{{-1, -1}});
  DeviceBuffer<unsigned char> ws(ws_bytes);
  uint64_t launches = lk::simt::stats().launches;
  REQUIRE(lk::cuda::ce_tversky_fwd(tp, n, c, hw, d_z.get(), d_t.get(), weighted ? d_w.get() : nullptr, d_loss.get(),
                                   d_stats.get(), d_err.get(), ws.get(), ws_bytes) == cudaSuccess);
  CHECK(lk::simt::stats().launches == launches + 2);
  const std::vector<float> stats = d_stats.download();
  CHECK(scaled_error(d_loss.download(), {static_cast<float>(loss_d)}) <= kTol);
  CHECK(scaled_error(stats, to_float(stats_d)) <= kTol);
  CHECK(d_err.download().at(0).index == -1);

  // Backward from the device's stats: accumulate onto a gradient, and overwrite one.
  const float dloss = 0.7f;
  const std::vector<float> g0 = uniform(sz, seed + 3, -1.f, 1.f);
  for (bool accumulate : {true, false}) {
    INFO("accumulate " << accumulate);
    std::vector<float> ref = g0;
    lk::cpu::ce_tversky_bwd<float>(tp, n, c, hw, &dloss, z.data(), t.data(), w.data(), stats.data(), ref.data(),
                                   accumulate);
    DeviceBuffer<float> d_g(accumulate ? g0 : std::vector<float>(sz, NAN)), d_dloss(std::vector<float>{dloss});
    launches = lk::simt::stats().launches;
    REQUIRE(lk::cuda::ce_tversky_bwd(tp, n, c, hw, d_dloss.get(), d_z.get(), d_t.get(),
                                     weighted ? d_w.get() : nullptr, d_stats.get(), d_g.get(), nullptr,
                                     accumulate) == cudaSuccess);
    CHECK(lk::simt::stats().launches == launches + 1);
    CHECK(scaled_error(d_g.download(), ref) <= kTol);
  }
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

}  // namespace

TEST_CASE("emu loss terms: CE + Tversky fused matches the CPU composition", "[emu]") {
  NoLeaks no_leaks;
  TverskyParams full, detached;
  full.detach_alpha = false;
  detached.detach_alpha = true;
  unsigned seed = 10;
  for (int64_t c : {1, 2, 4, 8})
    for (bool weighted : {true, false}) check_ce_tversky(full, 2, c, 13 * 11, weighted, seed += 5);
  check_ce_tversky(detached, 3, 4, 300, true, seed += 5);
  check_ce_tversky(full, 1, 4, 1024 * 3 + 7, true, seed += 5);  // several blocks per image
}

TEST_CASE("emu loss terms: threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  TverskyParams full;
  full.detach_alpha = false;
  check_ce_tversky(full, 2, 4, 1024 + 37, true, 91);  // two blocks per image
}

TEST_CASE("emu loss terms: a bad label is recorded on the device, more than 8 classes refused", "[emu]") {
  NoLeaks no_leaks;
  const int64_t n = 2, c = 4, hw = 300;
  std::vector<int32_t> t = labels(static_cast<size_t>(n * hw), c, 3, c - 1);
  t[450] = 9;
  t[500] = -1;
  const size_t ws_bytes = lk::cuda::ce_tversky_workspace_bytes(n, c, hw);
  DeviceBuffer<float> d_z(uniform(static_cast<size_t>(n * c * hw), 4, -1.f, 1.f)), d_loss(1),
      d_stats(static_cast<size_t>(lk::cpu::ce_tversky_stats(c)));
  DeviceBuffer<int32_t> d_t(t);
  DeviceBuffer<lk::cuda::LabelError> d_err(std::vector<lk::cuda::LabelError>{{-1, -1}});
  DeviceBuffer<unsigned char> ws(ws_bytes);
  REQUIRE(lk::cuda::ce_tversky_fwd(TverskyParams{}, n, c, hw, d_z.get(), d_t.get(), nullptr, d_loss.get(),
                                   d_stats.get(), d_err.get(), ws.get(), ws_bytes) == cudaSuccess);
  CHECK(std::isnan(d_loss.download().at(0)));
  CHECK(d_err.download().at(0).index == 450);
  CHECK(d_err.download().at(0).label == 9);
  CHECK(lk::cuda::ce_tversky_fwd(TverskyParams{}, n, 9, hw, d_z.get(), d_t.get(), nullptr, d_loss.get(),
                                 d_stats.get(), d_err.get(), ws.get(), ws_bytes) == cudaErrorInvalidValue);
  CHECK(lk::cuda::ce_tversky_fwd(TverskyParams{}, n, c, hw, d_z.get(), d_t.get(), nullptr, d_loss.get(),
                                 d_stats.get(), d_err.get(), ws.get(), ws_bytes - 8) == cudaErrorInvalidValue);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

TEST_CASE("emu loss terms: the weighted sum and its backward, both modes", "[emu]") {
  NoLeaks no_leaks;
  const int64_t k = 5, n = 300;
  const std::vector<double> w = {1.0, 0.4, 0.3, 0.2, -1.5};
  std::vector<std::vector<float>> x;
  std::vector<std::unique_ptr<DeviceBuffer<float>>> d_x;
  std::vector<const float*> xp;
  std::vector<const float*> hp;
  for (int64_t i = 0; i < k; ++i) {
    x.push_back(uniform(n, 40 + static_cast<unsigned>(i), -2.f, 2.f));
    d_x.push_back(std::make_unique<DeviceBuffer<float>>(x.back()));
    xp.push_back(d_x.back()->get());
    hp.push_back(x.back().data());
  }
  std::vector<float> y_ref(n);
  lk::cpu::weighted_sum_fwd<float>(k, hp.data(), w.data(), n, y_ref.data());
  DeviceBuffer<float> d_y(n);
  REQUIRE(lk::cuda::weighted_sum_fwd(static_cast<int>(k), xp.data(), w.data(), n, d_y.get()) == cudaSuccess);
  CHECK(scaled_error(d_y.download(), y_ref) <= kTol);

  // Backward: the odd inputs accumulate, the even ones are overwritten.
  const std::vector<float> dy = uniform(n, 50, -1.f, 1.f);
  std::vector<std::vector<float>> ref(k);
  std::vector<float*> rp, dp;
  std::unique_ptr<bool[]> acc(new bool[k]);
  std::vector<std::unique_ptr<DeviceBuffer<float>>> d_dx;
  for (int64_t i = 0; i < k; ++i) {
    acc[i] = i % 2 == 1;
    ref[i] = acc[i] ? uniform(n, 60 + static_cast<unsigned>(i), -1.f, 1.f) : std::vector<float>(n, NAN);
    d_dx.push_back(std::make_unique<DeviceBuffer<float>>(ref[i]));
    rp.push_back(ref[i].data());
    dp.push_back(d_dx.back()->get());
  }
  lk::cpu::weighted_sum_bwd<float>(k, dy.data(), w.data(), n, rp.data(), acc.get());
  DeviceBuffer<float> d_dy(dy);
  const uint64_t launches = lk::simt::stats().launches;
  REQUIRE(lk::cuda::weighted_sum_bwd(static_cast<int>(k), d_dy.get(), w.data(), n, dp.data(), acc.get()) ==
          cudaSuccess);
  CHECK(lk::simt::stats().launches == launches + 1);
  for (int64_t i = 0; i < k; ++i) {
    INFO("input " << i);
    CHECK(scaled_error(d_dx[i]->download(), ref[i]) <= kTol);
  }
  CHECK(lk::cuda::weighted_sum_fwd(9, xp.data(), w.data(), n, d_y.get()) == cudaErrorInvalidValue);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}
