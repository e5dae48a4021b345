// kernels/cuda/loss_scale.cu under the SIMT emulator against the CPU twin
// (kernels/loss_scale.h): a sequence of finite and non-finite totals drives
// the state array through backoffs, growths and a growth that would overflow
// float32; after every update the device's array equals the host's bit for bit.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cuda/loss_scale.h"
#include "kernels/loss_scale.h"
#include "tests/kernels/cuda/emu_util.h"

using namespace lk::emu_test;
using lk::emu_test::DeviceBuffer;

namespace {

// A scaler's state at `scale`, nothing counted yet.
std::vector<float> scaler_state(float scale) {
  std::vector<float> s(lk::cpu::kLossScaleStateSize, 0.f);
  s[lk::cpu::kLossScale] = scale;
  s[lk::cpu::kLossScaleInv] = 1.f / scale;
  return s;
}

// One update with gradient sum t on the device and on the host copy; the two must agree.
void update_both(const lk::cpu::LossScaleParams& p, float t, DeviceBuffer<float>& total, DeviceBuffer<float>& state,
                 std::vector<float>& host) {
  REQUIRE(total.upload(std::vector<float>{t}) == cudaSuccess);
  REQUIRE(lk::cuda::loss_scale_update(p, total.get(), state.get()) == cudaSuccess);
  lk::cpu::loss_scale_update(p, t, host.data());
  CHECK(state.download() == host);
}

}  // namespace

TEST_CASE("emu loss scale: overflow halves and flags, interval clean steps double, one launch each", "[emu]") {
  NoLeaks no_leaks;
  const lk::cpu::LossScaleParams p{2.0f, 0.5f, 3};
  std::vector<float> host = scaler_state(1024.f);
  DeviceBuffer<float> state(host), total(1);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> totals = {1.f, inf, 0.5f, -2.f, 3.f, nan, -inf, 0.f, 1e30f, 7.f};
  for (const float t : totals) {
    INFO("total " << t);
    const uint64_t launches = lk::simt::stats().launches;
    update_both(p, t, total, state, host);
    CHECK(lk::simt::stats().launches == launches + 1);
    CHECK(host[lk::cpu::kLossScaleFoundInf] == (std::isfinite(t) ? 0.f : 1.f));
    CHECK(host[lk::cpu::kLossScaleInv] == 1.f / host[lk::cpu::kLossScale]);
  }
  // 1024: inf -> 512; 0.5, -2, 3 -> 1024; nan -> 512; -inf -> 256; 0, 1e30, 7 -> 512.
  CHECK(host[lk::cpu::kLossScale] == 512.f);
  CHECK(host[lk::cpu::kLossScaleSkipped] == 3.f);
  CHECK(host[lk::cpu::kLossScaleGood] == 0.f);
  // A growth past float32's range keeps the scale finite.
  std::vector<float> big(lk::cpu::kLossScaleStateSize, 0.f);
  big[lk::cpu::kLossScale] = 3e38f;
  big[lk::cpu::kLossScaleGood] = 2.f;
  lk::cpu::loss_scale_update(p, 1.f, big.data());
  CHECK(big[lk::cpu::kLossScale] == 3e38f);
  CHECK(big[lk::cpu::kLossScaleGood] == 0.f);
  CHECK(lk::cuda::loss_scale_update(p, nullptr, state.get()) == cudaErrorInvalidValue);
  CHECK(lk::cuda::loss_scale_update(p, total.get(), nullptr) == cudaErrorInvalidValue);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

TEST_CASE("emu loss scale: threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  const lk::cpu::LossScaleParams p{2.0f, 0.5f, 2};
  std::vector<float> host = scaler_state(64.f);
  DeviceBuffer<float> state(host), total(1);
  for (const float t : {1.f, std::numeric_limits<float>::infinity(), 2.f, 3.f}) update_both(p, t, total, state, host);
  CHECK(host[lk::cpu::kLossScaleSkipped] == 1.f);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}
