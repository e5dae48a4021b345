// The float16 loss scaler's unscale (engine/loss_scaler.h, Backend::grad_unscale)
// on the CPU backend: gradients of several tensors of odd sizes (one bigger
// than a CPU task's chunk) multiplied by exactly 1/S, a NaN, +inf or -inf
// planted in one element of one tensor found, huge finite gradients not
// taken for an overflow, and the state against hand-computed values.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/loss_scaler.h"
#include "kernels/loss_scale.h"
#include "tests/support/harness.h"

using namespace lk;
using Catch::Matchers::Contains;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
const std::vector<int64_t> kSizes = {1, 3, 1001, 20011, 40000};

std::vector<Tensor> make_params() {
  std::vector<Tensor> ps;
  for (const int64_t n : kSizes) ps.push_back(Tensor::zeros({n}).set_requires_grad(true));
  ps.push_back(Tensor::zeros({7}).set_requires_grad(true));  // never gets a gradient
  return ps;
}

// Seeded gradients in [-3, 3) * mul for every parameter but the last; one
// value planted at (tensor, index) when tensor >= 0. Returns their copies.
std::vector<std::vector<float>> set_grads(const std::vector<Tensor>& ps, unsigned seed, float mul, int tensor = -1,
                                          int64_t index = 0, float value = 0.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-3.f, 3.f);
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i + 1 < ps.size(); ++i) {
    const Tensor g = grad_buffer(ps[i]);
    float* p = g.data<float>();
    for (int64_t k = 0; k < g.numel(); ++k) p[k] = d(rng) * mul;
    if (static_cast<int>(i) == tensor) p[index] = value;
    out.emplace_back(p, p + g.numel());
  }
  return out;
}

// Every gradient equals before[i] * inv bit for bit.
void check_unscaled(const std::vector<Tensor>& ps, const std::vector<std::vector<float>>& before, float inv) {
  for (size_t i = 0; i < before.size(); ++i) {
    INFO("tensor " << i);
    std::vector<float> want = before[i];
    for (float& x : want) x *= inv;
    CHECK(std::memcmp(ps[i].grad().data<float>(), want.data(), want.size() * sizeof(float)) == 0);
  }
  CHECK_FALSE(ps.back().grad().defined());
}

}  // namespace

TEST_CASE("loss scaler on the CPU: exact unscale, a planted NaN or infinity found anywhere, growth and backoff",
          "[loss_scaler]") {
  const std::vector<Tensor> ps = make_params();
  LossScaler scaler(true, {.init_scale = 1024, .interval = 2});
  auto before = set_grads(ps, 1, 1024.f);
  scaler.unscale(ps);
  check_unscaled(ps, before, 1.f / 1024);
  CHECK(scaler.found_inf().item() == 0);
  CHECK(scaler.scale() == 1024);
  before = set_grads(ps, 2, 1024.f);
  scaler.unscale(ps);  // the second clean step in a row: S doubles
  check_unscaled(ps, before, 1.f / 1024);
  CHECK(scaler.scale() == 2048);
  CHECK(scaler.skipped() == 0);

  struct Plant {
    int tensor;
    int64_t index;
    float value;
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<Plant> plants = {{4, 39999, kInf}, {0, 0, nan}, {3, 17000, -kInf}, {2, 1000, kInf}, {1, 1, -nan}};
  double scale = 2048;
  for (size_t k = 0; k < plants.size(); ++k) {
    INFO("planted " << plants[k].value << " in tensor " << plants[k].tensor << " at " << plants[k].index);
    set_grads(ps, 10 + static_cast<unsigned>(k), 1.f, plants[k].tensor, plants[k].index, plants[k].value);
    scaler.unscale(ps);
    scale /= 2;
    CHECK(scaler.found_inf().item() == 1);
    CHECK(scaler.scale() == scale);
    CHECK(scaler.skipped() == static_cast<int64_t>(k + 1));
    const float* g = ps[plants[k].tensor].grad().data<float>();
    CHECK_FALSE(std::isfinite(g[plants[k].index]));
    // A clean step after it clears the flag and starts counting again.
    set_grads(ps, 20 + static_cast<unsigned>(k), 1.f);
    scaler.unscale(ps);
    CHECK(scaler.found_inf().item() == 0);
    CHECK(scaler.scale() == scale);
  }
}

TEST_CASE("loss scaler on the CPU: huge finite gradients are not an overflow (their sum would be)", "[loss_scaler]") {
  const std::vector<Tensor> ps = make_params();
  for (size_t i = 0; i + 1 < ps.size(); ++i) grad_buffer(ps[i]).fill_(3e38);
  LossScaler scaler(true, {.init_scale = 1});
  scaler.unscale(ps);
  CHECK(scaler.found_inf().item() == 0);
  CHECK(scaler.skipped() == 0);
  CHECK(ps[4].grad().data<float>()[123] == 3e38f);
}

TEST_CASE("Backend::grad_unscale on the CPU: the state against hand-computed values, bad arguments named",
          "[loss_scaler]") {
  Backend& be = backend(cpu_device());
  const cpu::LossScaleParams p{4.0f, 0.25f, 2};
  // S, 1/S, clean steps, skipped, found_inf, the unscale's flag.
  Tensor state = Tensor::from_vector({8, 0.125, 1, 5, 1, 0}, {cpu::kLossScaleStateSize}, DType::F32);
  Tensor a = Tensor::from_vector({16, -8, 2}, {3}, DType::F32), b = Tensor::from_vector({0.5}, {1}, DType::F32);
  be.grad_unscale({a, b}, p, state);
  CHECK(a.to_vector() == std::vector<double>{2, -1, 0.25});
  CHECK(b.to_vector() == std::vector<double>{0.0625});
  CHECK(state.to_vector() == std::vector<double>{32, 1.0 / 32, 0, 5, 0, 0});  // second clean step: S * 4
  b.data<float>()[0] = kInf;
  be.grad_unscale({a, b}, p, state);
  CHECK(state.to_vector() == std::vector<double>{8, 0.125, 0, 6, 1, 0});  // S * 0.25, one more skip
  be.grad_unscale({}, p, state);                                           // no gradient: a clean step
  CHECK(state.to_vector() == std::vector<double>{8, 0.125, 1, 6, 0, 0});

  CHECK_THROWS_WITH(be.grad_unscale({a}, p, Tensor::zeros({5})), Contains("loss scaler's"));
  CHECK_THROWS_WITH(be.grad_unscale({Tensor::zeros({2}, DType::F64)}, p, state), Contains("float32"));
  const std::vector<Tensor> ps = {Tensor::zeros({2}, DType::F64).set_requires_grad(true).set_name("w")};
  grad_buffer(ps[0]).fill_(1.0);
  LossScaler scaler(true);
  CHECK_THROWS_WITH(scaler.unscale(ps), Contains("'w' is float64"));
}
