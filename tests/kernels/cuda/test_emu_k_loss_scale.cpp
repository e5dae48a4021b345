// kernels/cuda/loss_scale.cu under the SIMT emulator against the CPU twins
// (kernels/loss_scale.h): the unscale of several gradients of odd sizes
// (1 element, 3, 1001, one chunk, more than one chunk) in one launch, then the
// decision in a second; gradients and state equal the CPU's bit for bit and
// the product g * (1/S) computed here. A NaN, +inf or -inf planted in one
// element of one tensor is found wherever it is; huge finite gradients are
// not an overflow; a sequence of clean and overflowing steps drives the scale
// through backoffs, growths and a growth that would overflow float32.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "kernels/cuda/loss_scale.h"
#include "kernels/loss_scale.h"
#include "tests/kernels/cuda/emu_util.h"

using namespace lk::emu_test;
using lk::emu_test::DeviceBuffer;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

// A scaler's state at `scale`, nothing counted yet.
std::vector<float> scaler_state(float scale) {
  std::vector<float> s(lk::cpu::kLossScaleStateSize, 0.f);
  s[lk::cpu::kLossScale] = scale;
  s[lk::cpu::kLossScaleInv] = 1.f / scale;
  return s;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Gradients on the device and their host twins, with the table uploaded once.
class Grads {
 public:
  Grads(const std::vector<int64_t>& sizes, const std::vector<float>& state) : d_state_(state), host_state_(state) {
    std::vector<lk::cuda::GradUnscaleTensor> recs;
    for (const int64_t n : sizes) {
      host_.emplace_back(n, 0.f);
      device_.push_back(std::make_unique<DeviceBuffer<float>>(n));
      recs.push_back({device_.back()->get(), n});
    }
    REQUIRE(lk::cuda::grad_unscale_table(recs, &table_) == cudaSuccess);
    d_table_ = std::make_unique<DeviceBuffer<unsigned char>>(table_.bytes);
  }

  // Fresh gradients (seeded, both sides).
  void set(unsigned seed) {
    for (size_t i = 0; i < host_.size(); ++i) {
      host_[i] = uniform(host_[i].size(), seed + static_cast<unsigned>(i), -3.f, 3.f);
      REQUIRE(device_[i]->upload(host_[i]) == cudaSuccess);
    }
  }
  // One value planted at (tensor, index), both sides.
  void plant(int tensor, int64_t index, float value) {
    host_[tensor][index] = value;
    REQUIRE(device_[tensor]->upload(host_[tensor]) == cudaSuccess);
  }
  void fill(float value) {
    for (size_t i = 0; i < host_.size(); ++i) {
      host_[i].assign(host_[i].size(), value);
      REQUIRE(device_[i]->upload(host_[i]) == cudaSuccess);
    }
  }

  // One step on the device (two launches) and on the host; every gradient
  // and the state must agree bit for bit, and equal g * (1/S).
  void step(const lk::cpu::LossScaleParams& p) {
    const float inv = host_state_[lk::cpu::kLossScaleInv];
    std::vector<std::vector<float>> want = host_;
    for (auto& g : want)
      for (float& x : g) x *= inv;
    std::vector<float*> ptrs;
    std::vector<int64_t> counts;
    for (auto& g : host_) ptrs.push_back(g.data()), counts.push_back(static_cast<int64_t>(g.size()));
    const uint64_t launches = lk::simt::stats().launches;
    REQUIRE(lk::cuda::grad_unscale(table_, d_table_->get(), p, d_state_.get()) == cudaSuccess);
    CHECK(lk::simt::stats().launches == launches + 2);  // every tensor, then the decision
    lk::cpu::grad_unscale(ptrs.data(), counts.data(), static_cast<int64_t>(ptrs.size()), host_state_.data());
    lk::cpu::loss_scale_update(p, host_state_.data());
    for (size_t i = 0; i < host_.size(); ++i) {
      INFO("tensor " << i << " numel " << host_[i].size());
      CHECK(same_bits(host_[i], want[i]));
      CHECK(same_bits(device_[i]->download(), want[i]));
    }
    CHECK(same_bits(d_state_.download(), host_state_));
    CHECK(host_state_[lk::cpu::kLossScaleNonFinite] == 0.f);  // cleared for the next step
    CHECK(host_state_[lk::cpu::kLossScaleInv] == 1.f / host_state_[lk::cpu::kLossScale]);
  }

  const std::vector<float>& state() const { return host_state_; }

 private:
  std::vector<std::vector<float>> host_;
  std::vector<std::unique_ptr<DeviceBuffer<float>>> device_;
  lk::cuda::TensorTable table_;
  std::unique_ptr<DeviceBuffer<unsigned char>> d_table_;
  DeviceBuffer<float> d_state_;
  std::vector<float> host_state_;
};

const std::vector<int64_t> kSizes = {1, 3, 1001, lk::cuda::kTableChunk, 2 * lk::cuda::kTableChunk + 7};

}  // namespace

TEST_CASE("emu loss scale: one launch unscales every gradient, a planted NaN or infinity is found anywhere", "[emu]") {
  NoLeaks no_leaks;
  const lk::cpu::LossScaleParams p{2.0f, 0.5f, 1000};
  Grads g(kSizes, scaler_state(1024.f));
  g.set(1);
  g.step(p);  // clean
  CHECK(g.state()[lk::cpu::kLossScaleFoundInf] == 0.f);
  CHECK(g.state()[lk::cpu::kLossScaleGood] == 1.f);
  CHECK(g.state()[lk::cpu::kLossScale] == 1024.f);
  struct Plant {
    int tensor;
    int64_t index;
    float value;
  };
  const int64_t last = kSizes[4] - 1;
  const std::vector<Plant> plants = {{0, 0, kInf},    {2, 500, kNaN}, {4, last, -kInf},
                                     {4, 5000, kInf}, {1, 2, -kNaN},  {3, 4095, kInf}};
  float scale = 1024.f;
  for (size_t k = 0; k < plants.size(); ++k) {
    const Plant& pl = plants[k];
    INFO("planted " << pl.value << " in tensor " << pl.tensor << " at " << pl.index);
    g.set(10 + static_cast<unsigned>(k));
    g.plant(pl.tensor, pl.index, pl.value);
    g.step(p);
    scale /= 2;
    CHECK(g.state()[lk::cpu::kLossScaleFoundInf] == 1.f);
    CHECK(g.state()[lk::cpu::kLossScaleSkipped] == static_cast<float>(k + 1));
    CHECK(g.state()[lk::cpu::kLossScaleGood] == 0.f);
    CHECK(g.state()[lk::cpu::kLossScale] == scale);
    g.set(20 + static_cast<unsigned>(k));  // and the next clean step is clean again
    g.step(p);
    CHECK(g.state()[lk::cpu::kLossScaleFoundInf] == 0.f);
    CHECK(g.state()[lk::cpu::kLossScaleGood] == 1.f);
  }
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

TEST_CASE("emu loss scale: huge finite gradients are no overflow, a product past float32's range is one", "[emu]") {
  NoLeaks no_leaks;
  const lk::cpu::LossScaleParams p{2.0f, 0.5f, 1000};
  Grads g(kSizes, scaler_state(1.f));
  g.fill(3e38f);  // any sum of these overflows; the flag does not
  g.step(p);
  CHECK(g.state()[lk::cpu::kLossScaleFoundInf] == 0.f);
  Grads below_one(kSizes, scaler_state(0.25f));  // S backed off below 1: 1/S = 4 carries 1e38 past 3.4e38
  below_one.set(3);
  below_one.plant(3, 17, 1e38f);
  below_one.step(p);
  CHECK(below_one.state()[lk::cpu::kLossScaleFoundInf] == 1.f);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

TEST_CASE("emu loss scale: overflows halve and flag, interval clean steps double, growth stays finite", "[emu]") {
  NoLeaks no_leaks;
  const lk::cpu::LossScaleParams p{2.0f, 0.5f, 3};
  Grads g({1}, scaler_state(1024.f));
  const std::vector<float> values = {1.f, kInf, 0.5f, -2.f, 3.f, kNaN, -kInf, 0.f, 1e30f, 7.f};
  for (const float v : values) {
    INFO("gradient " << v);
    g.plant(0, 0, v);
    g.step(p);
    CHECK(g.state()[lk::cpu::kLossScaleFoundInf] == (std::isfinite(v) ? 0.f : 1.f));
  }
  // 1024: inf -> 512; 0.5, -2, 3 -> 1024; nan -> 512; -inf -> 256; 0, 1e30, 7 -> 512.
  CHECK(g.state()[lk::cpu::kLossScale] == 512.f);
  CHECK(g.state()[lk::cpu::kLossScaleSkipped] == 3.f);
  CHECK(g.state()[lk::cpu::kLossScaleGood] == 0.f);
  // A growth past float32's range keeps the scale finite.
  std::vector<float> big = scaler_state(3e38f);
  big[lk::cpu::kLossScaleGood] = 2.f;
  lk::cpu::loss_scale_update(p, big.data());
  CHECK(big[lk::cpu::kLossScale] == 3e38f);
  CHECK(big[lk::cpu::kLossScaleGood] == 0.f);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

TEST_CASE("emu loss scale: no gradient is a clean step in one launch, invalid tables and arguments are refused", "[emu]") {
  NoLeaks no_leaks;
  const lk::cpu::LossScaleParams p{2.0f, 0.5f, 2};
  DeviceBuffer<float> state(scaler_state(64.f)), d(4);
  lk::cuda::TensorTable t;
  REQUIRE(lk::cuda::grad_unscale_table({{d.get(), 0}, {nullptr, 0}}, &t) == cudaSuccess);  // empty tensors
  CHECK(t.chunks == 0);
  const uint64_t launches = lk::simt::stats().launches;
  CHECK(lk::cuda::grad_unscale(t, nullptr, p, state.get()) == cudaSuccess);
  CHECK(lk::simt::stats().launches == launches + 1);
  CHECK(state.download()[lk::cpu::kLossScaleGood] == 1.f);
  CHECK(lk::cuda::grad_unscale_table({{nullptr, 4}}, &t) == cudaErrorInvalidValue);
  CHECK(lk::cuda::grad_unscale_table({{d.get(), -1}}, &t) == cudaErrorInvalidValue);
  CHECK(lk::cuda::grad_unscale_table({{d.get(), 4}}, nullptr) == cudaErrorInvalidValue);
  REQUIRE(lk::cuda::grad_unscale_table({{d.get(), 4}}, &t) == cudaSuccess);
  CHECK(t.chunks == 1);
  CHECK(lk::cuda::grad_unscale(t, nullptr, p, state.get()) == cudaErrorInvalidValue);  // no table
  CHECK(lk::cuda::grad_unscale(t, d.get(), p, nullptr) == cudaErrorInvalidValue);      // no state
  CHECK(lk::simt::stats().launches == launches + 1);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

TEST_CASE("emu loss scale: threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  const lk::cpu::LossScaleParams p{2.0f, 0.5f, 2};
  Grads g({5, lk::cuda::kTableChunk + 1, 300, 3 * lk::cuda::kTableChunk}, scaler_state(64.f));
  g.set(1);
  g.step(p);
  g.set(2);
  g.plant(3, 2 * lk::cuda::kTableChunk + 9, kInf);  // one block flags, the others' chunks are clean
  g.step(p);
  g.set(3);
  for (int t = 0; t < 4; ++t) g.plant(t, 0, kNaN);  // every block's first chunk flags at once
  g.plant(3, lk::cuda::kTableChunk, -kInf);
  g.step(p);
  g.set(4);
  g.step(p);
  CHECK(g.state()[lk::cpu::kLossScaleSkipped] == 2.f);
  CHECK(g.state()[lk::cpu::kLossScale] == 16.f);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}
