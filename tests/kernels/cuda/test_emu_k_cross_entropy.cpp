// kernels/cuda/cross_entropy.cu (softmax over channels, fused softmax + weighted
// cross-entropy) run by the SIMT emulator against kernels/softmax.h and
// kernels/cross_entropy.h, through cudaMalloc/cudaMemcpy (NaN-poisoned,
// guarded). Value-scaled error max|a-b| / max|ref| <= 1e-5 everywhere: the
// loss is compared with the double instantiation of the CPU kernel, so the
// tolerance measures only our float per-pixel terms (~1e-7 relative; the sums
// are in double on both sides).
#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cross_entropy.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/softmax.h"
#include "tests/kernels/cuda/emu_util.h"

using namespace lk::emu_test;  // DeviceBuffer, scaled_error, uniform, NoLeaks, ...
using lk::emu_test::DeviceBuffer;
using lk::emu_test::scaled_error;

namespace {

constexpr double kTol = 1e-5;


float download1(const DeviceBuffer<float>& b) {
  const std::vector<float> v = b.download();
  return v.empty() ? NAN : v[0];
}

double rel(double a, double ref) { return std::fabs(a - ref) / std::max(std::fabs(ref), 1e-30); }

void check_softmax(int64_t n, int64_t c, int64_t hw, unsigned seed) {
  INFO("softmax n " << n << " c " << c << " hw " << hw);
  const size_t sz = static_cast<size_t>(n * c * hw);
  const std::vector<float> x = uniform(sz, seed, -8.f, 8.f), dy = uniform(sz, seed + 1, -1.f, 1.f),
                           dx0 = uniform(sz, seed + 2, -1.f, 1.f);
  std::vector<float> y_ref(sz), dx_ref = dx0;
  lk::cpu::softmax_fwd<float>(n, c, hw, x.data(), y_ref.data());
  lk::cpu::softmax_bwd<float>(n, c, hw, dy.data(), y_ref.data(), dx_ref.data());

  DeviceBuffer<float> d_x(x), d_y(sz), d_dy(dy), d_dx(dx0);
  REQUIRE(lk::cuda::softmax_fwd(n, c, hw, d_x.get(), d_y.get()) == cudaSuccess);
  CHECK(scaled_error(d_y.download(), y_ref) <= kTol);
  REQUIRE(d_y.upload(y_ref) == cudaSuccess);  // backward from the reference output
  REQUIRE(lk::cuda::softmax_bwd(n, c, hw, d_dy.get(), d_y.get(), d_dx.get()) == cudaSuccess);
  CHECK(scaled_error(d_dx.download(), dx_ref) <= kTol);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

void check_ce(int64_t n, int64_t c, int64_t hw, bool weighted, unsigned seed) {
  INFO("cross-entropy n " << n << " c " << c << " hw " << hw << " weighted " << weighted);
  const size_t sz = static_cast<size_t>(n * c * hw), np = static_cast<size_t>(n * hw);
  const std::vector<float> z = uniform(sz, seed, -6.f, 6.f), dl0 = uniform(sz, seed + 1, -1.f, 1.f);
  const std::vector<int32_t> t = labels(np, c, seed + 2, c / 2);
  const std::vector<float> w = weighted ? uniform(c, seed + 3, 0.2f, 2.f) : std::vector<float>(c, 1.f);

  // References: probs and the backward in float, the loss in double.
  std::vector<float> p_ref(sz), dl_ref = dl0;
  float loss_f = 0, wsum_f = 0;
  REQUIRE(lk::cpu::cross_entropy_fwd<float>(n, c, hw, z.data(), t.data(), w.data(), &loss_f, p_ref.data(), &wsum_f) ==
          -1);
  const std::vector<double> zd = to_double(z), wd = to_double(w);
  std::vector<double> pd(sz);
  double loss_d = 0, wsum_d = 0;
  REQUIRE(lk::cpu::cross_entropy_fwd<double>(n, c, hw, zd.data(), t.data(), wd.data(), &loss_d, pd.data(), &wsum_d) ==
          -1);
  const float dloss = 0.75f;
  lk::cpu::cross_entropy_bwd<float>(n, c, hw, &dloss, p_ref.data(), t.data(), w.data(), &wsum_f, dl_ref.data());

  const size_t ws_bytes = lk::cuda::cross_entropy_workspace_bytes(n, hw);
  DeviceBuffer<float> d_z(z), d_w(w), d_p(sz), d_loss(1), d_wsum(1), d_dl(dl0), d_dloss(std::vector<float>{dloss});
  DeviceBuffer<int32_t> d_t(t);
  DeviceBuffer<lk::cuda::LabelError> d_bad(std::vector<lk::cuda::LabelError>{{-1, -1}});
  DeviceBuffer<unsigned char> ws(ws_bytes);
  REQUIRE(lk::cuda::cross_entropy_fwd(n, c, hw, d_z.get(), d_t.get(), weighted ? d_w.get() : nullptr, d_p.get(),
                                   d_loss.get(), d_wsum.get(), d_bad.get(), ws.get(), ws_bytes) == cudaSuccess);
  CHECK(scaled_error(d_p.download(), p_ref) <= kTol);
  const float loss = download1(d_loss), wsum = download1(d_wsum);
  CHECK(rel(loss, loss_d) <= kTol);
  CHECK(rel(wsum, wsum_d) <= kTol);
  CHECK(d_bad.download().at(0).index == -1);  // nothing recorded

  // Bitwise reproducible: a second run gives the same bits.
  int64_t first_bad = 7;
  REQUIRE(lk::cuda::cross_entropy_fwd_checked(n, c, hw, d_z.get(), d_t.get(), weighted ? d_w.get() : nullptr, d_p.get(),
                                           d_loss.get(), d_wsum.get(), &first_bad, ws.get(), ws_bytes) == cudaSuccess);
  CHECK(first_bad == -1);
  CHECK(std::bit_cast<uint32_t>(download1(d_loss)) == std::bit_cast<uint32_t>(loss));

  // Backward from the reference probs and weight sum (dloss, wsum on the device).
  REQUIRE(d_p.upload(p_ref) == cudaSuccess);
  REQUIRE(d_wsum.upload(std::vector<float>{wsum_f}) == cudaSuccess);
  REQUIRE(lk::cuda::cross_entropy_bwd(n, c, hw, d_dloss.get(), d_p.get(), d_t.get(), weighted ? d_w.get() : nullptr,
                                   d_wsum.get(), d_dl.get()) == cudaSuccess);
  CHECK(scaled_error(d_dl.download(), dl_ref) <= kTol);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

}  // namespace

TEST_CASE("emu cross_entropy: softmax over channels matches softmax_fwd/bwd", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 1;
  for (int64_t n : {1, 3})
    for (int64_t c : {1, 3, 17, 64}) check_softmax(n, c, 13 * 11, seed += 3);
  check_softmax(2, 4, 1000, seed += 3);  // several blocks per image
}

TEST_CASE("emu cross_entropy: fused softmax + cross-entropy on the shape grid", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 100;
  for (int64_t n : {1, 3})
    for (int64_t c : {1, 3, 4, 17, 64})
      for (bool weighted : {true, false}) check_ce(n, c, 13 * 11, weighted, seed += 4);
  // 4 blocks per image, 12 partials in the final pass.
  check_ce(3, 4, 1000, true, seed += 4);
}

TEST_CASE("emu cross_entropy: cross-entropy in threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  check_ce(2, 4, 300, true, 7);
}

TEST_CASE("emu cross_entropy: an out-of-range label is reported with its first index", "[emu]") {
  NoLeaks no_leaks;
  const int64_t n = 3, c = 4, hw = 600;
  const size_t sz = static_cast<size_t>(n * c * hw);
  const std::vector<float> z = uniform(sz, 5, -3.f, 3.f), w = uniform(c, 6, 0.5f, 1.5f);
  std::vector<int32_t> t = labels(static_cast<size_t>(n * hw), c, 7, 1);
  // Three bad labels in different blocks and images; the first is 700.
  t[1500] = static_cast<int32_t>(c);
  t[700] = -1;
  t[1799] = 99;
  std::vector<float> p_ref(sz);
  float loss_ref = 0, wsum_ref = 0;
  REQUIRE(lk::cpu::cross_entropy_fwd<float>(n, c, hw, z.data(), t.data(), w.data(), &loss_ref, p_ref.data(),
                                            &wsum_ref) == 700);
  lk::cpu::softmax_fwd<float>(n, c, hw, z.data(), p_ref.data());  // the CPU kernel stops before the softmax

  const size_t ws_bytes = lk::cuda::cross_entropy_workspace_bytes(n, hw);
  DeviceBuffer<float> d_z(z), d_w(w), d_p(sz), d_loss(1), d_wsum(1);
  DeviceBuffer<int32_t> d_t(t);
  using lk::cuda::LabelError;
  const std::vector<LabelError> none{{-1, -1}};
  DeviceBuffer<LabelError> d_bad(none);
  DeviceBuffer<unsigned char> ws(ws_bytes);
  int64_t first_bad = -7;
  CHECK(lk::cuda::cross_entropy_fwd_checked(n, c, hw, d_z.get(), d_t.get(), d_w.get(), d_p.get(), d_loss.get(),
                                         d_wsum.get(), &first_bad, ws.get(), ws_bytes) == lk::cuda::kErrorBadLabel);
  CHECK(first_bad == 700);
  CHECK(std::isnan(download1(d_loss)));
  // The asynchronous launcher leaves the index and the label in device memory.
  REQUIRE(lk::cuda::cross_entropy_fwd(n, c, hw, d_z.get(), d_t.get(), d_w.get(), d_p.get(), d_loss.get(), d_wsum.get(),
                                   d_bad.get(), ws.get(), ws_bytes) == cudaSuccess);
  auto bad = d_bad.download().at(0);
  CHECK(bad.index == 700);
  CHECK(bad.label == -1);
  // The record keeps the first error: a later bad call does not overwrite it.
  DeviceBuffer<int32_t> d_t2(std::vector<int32_t>(static_cast<size_t>(n * hw), 5));
  REQUIRE(lk::cuda::cross_entropy_fwd(n, c, hw, d_z.get(), d_t2.get(), d_w.get(), d_p.get(), d_loss.get(), d_wsum.get(),
                                   d_bad.get(), ws.get(), ws_bytes) == cudaSuccess);
  CHECK(d_bad.download().at(0).index == 700);
  // Cleared, it takes the next one.
  REQUIRE(d_bad.upload(none) == cudaSuccess);
  REQUIRE(lk::cuda::cross_entropy_fwd(n, c, hw, d_z.get(), d_t2.get(), d_w.get(), d_p.get(), d_loss.get(), d_wsum.get(),
                                   d_bad.get(), ws.get(), ws_bytes) == cudaSuccess);
  bad = d_bad.download().at(0);
  CHECK(bad.index == 0);
  CHECK(bad.label == 5);
  REQUIRE(d_bad.upload(none) == cudaSuccess);
  // The probabilities are still the softmax.
  CHECK(scaled_error(d_p.download(), p_ref) <= kTol);
  // A too small workspace or a missing output is refused before launching.
  CHECK(lk::cuda::cross_entropy_fwd(n, c, hw, d_z.get(), d_t.get(), d_w.get(), d_p.get(), d_loss.get(), d_wsum.get(),
                                 d_bad.get(), ws.get(), ws_bytes - 1) == cudaErrorInvalidValue);
  CHECK(lk::cuda::cross_entropy_fwd(n, c, hw, d_z.get(), d_t.get(), d_w.get(), d_p.get(), nullptr, d_wsum.get(),
                                 d_bad.get(), ws.get(), ws_bytes) == cudaErrorInvalidValue);
  // No pixel at all: loss 0/0 = NaN and wsum 0, as the CPU kernel.
  REQUIRE(lk::cuda::cross_entropy_fwd(0, c, hw, nullptr, nullptr, nullptr, nullptr, d_loss.get(), d_wsum.get(), d_bad.get(),
                                   ws.get(), ws_bytes) == cudaSuccess);
  CHECK(std::isnan(download1(d_loss)));
  CHECK(download1(d_wsum) == 0.f);
  CHECK(d_bad.download().at(0).index == -1);  // nothing recorded
  CHECK(lk::cuda::softmax_fwd(1, 0, 5, nullptr, nullptr) == cudaErrorInvalidValue);
  CHECK(lk::cuda::softmax_fwd(0, 4, 5, nullptr, nullptr) == cudaSuccess);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}
