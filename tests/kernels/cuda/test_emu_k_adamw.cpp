// kernels/cuda/adamw.cu under the SIMT emulator against lk::AdamW
// (engine/optim.h: the step's scalars in double, the update in float): three steps on
// tensors of odd sizes (across the 4096-element chunks), one of them without
// a gradient, two launches per step (the scalars, then every tensor), with
// the table uploaded once and lr and the step count in device memory.
// Parameters and both moments within 1e-6 value-scaled (max|a-b| / max|ref|
// per tensor); the tensor without a gradient must stay bit-identical.
#include <catch2/catch.hpp>
#include <memory>
#include <random>
#include <vector>

#include "engine/autograd.h"
#include "engine/optim.h"
#include "kernels/adamw.h"
#include "kernels/cuda/adamw.h"
#include "tests/kernels/cuda/emu_util.h"

using namespace lk::emu_test;  // DeviceBuffer, scaled_error, uniform, NoLeaks, ...
using lk::emu_test::DeviceBuffer;
using lk::emu_test::scaled_error;

namespace {

constexpr double kTol = 1e-6;

std::vector<float> host_floats(const lk::Tensor& t) {
  const float* p = t.data<float>();
  return {p, p + t.numel()};
}

lk::Tensor cpu_tensor(const std::vector<float>& v) {
  return lk::Tensor::from_vector(std::vector<double>(v.begin(), v.end()), {static_cast<int64_t>(v.size())},
                                 lk::DType::F32);
}

// sizes[i] elements per tensor; no gradient for tensor `no_grad`.
void check_adamw(const std::vector<int64_t>& sizes, size_t no_grad, const lk::AdamW::Options& o, int steps,
                 unsigned seed) {
  INFO("adamw tensors " << sizes.size() << " lr " << o.lr << " wd " << o.weight_decay);
  const size_t count = sizes.size();
  std::vector<lk::Tensor> params;
  std::vector<std::vector<float>> init;
  for (size_t i = 0; i < count; ++i) {
    init.push_back(uniform(sizes[i], seed + static_cast<unsigned>(i), -2.f, 2.f));
    params.push_back(cpu_tensor(init.back()).set_requires_grad(true));
  }
  lk::AdamW opt(params, o);

  std::vector<std::unique_ptr<DeviceBuffer<float>>> d_p, d_g, d_m, d_v;
  std::vector<lk::cuda::AdamWTensor> table;
  for (size_t i = 0; i < count; ++i) {
    const std::vector<float> zeros(sizes[i], 0.f);
    d_p.push_back(std::make_unique<DeviceBuffer<float>>(init[i]));
    d_g.push_back(std::make_unique<DeviceBuffer<float>>(sizes[i]));
    d_m.push_back(std::make_unique<DeviceBuffer<float>>(zeros));
    d_v.push_back(std::make_unique<DeviceBuffer<float>>(zeros));
    table.push_back({d_p[i]->get(), i == no_grad ? nullptr : d_g[i]->get(), d_m[i]->get(), d_v[i]->get(), sizes[i]});
  }

  lk::cuda::TensorTable tab;
  REQUIRE(lk::cuda::adamw_table(table, &tab) == cudaSuccess);
  DeviceBuffer<unsigned char> d_table(tab.bytes);
  std::vector<double> state(lk::cpu::kAdamWStateSize, 0.0);
  state[lk::cpu::kAdamWLr] = o.lr;
  DeviceBuffer<double> d_state(state);
  for (int s = 1; s <= steps; ++s) {
    for (size_t i = 0; i < count; ++i) {
      if (i == no_grad) continue;
      // Gradients of mixed magnitude, a few exact zeros.
      std::vector<float> g = uniform(sizes[i], seed + 1000 * s + static_cast<unsigned>(i), -1.f, 1.f);
      for (size_t k = 0; k < g.size(); k += 3) g[k] *= 1e-3f;
      for (size_t k = 5; k < g.size(); k += 11) g[k] = 0.f;
      lk::grad_buffer(params[i]).copy_from(cpu_tensor(g));
      REQUIRE(d_g[i]->upload(g) == cudaSuccess);
    }
    opt.step();
    const uint64_t launches = lk::simt::stats().launches;
    REQUIRE(lk::cuda::adamw_step(tab, d_table.get(), d_state.get(), o.beta1, o.beta2, o.eps, o.weight_decay) ==
            cudaSuccess);
    CHECK(lk::simt::stats().launches == launches + 2);  // the scalars, then every tensor
    lk::cpu::adamw_advance(state.data(), o.beta1, o.beta2, o.weight_decay);
    CHECK(d_state.download() == state);  // t and the derived scalars, bit for bit
  }
  for (size_t i = 0; i < count; ++i) {
    INFO("tensor " << i << " numel " << sizes[i]);
    const std::vector<float> p = d_p[i]->download(), m = d_m[i]->download(), v = d_v[i]->download();
    if (i == no_grad) {
      CHECK(p == init[i]);
      CHECK(m == std::vector<float>(sizes[i], 0.f));
      CHECK(v == std::vector<float>(sizes[i], 0.f));
      CHECK(host_floats(params[i]) == init[i]);
      continue;
    }
    CHECK(scaled_error(p, host_floats(params[i])) <= kTol);
    CHECK(scaled_error(m, host_floats(opt.first_moments()[i])) <= kTol);
    CHECK(scaled_error(v, host_floats(opt.second_moments()[i])) <= kTol);
    CHECK(p != init[i]);  // it moved
  }
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

}  // namespace

TEST_CASE("emu adamw: three steps match lk::AdamW, one launch for all tensors", "[emu]") {
  NoLeaks no_leaks;
  const std::vector<int64_t> sizes = {1, 7, 33, 129, 4095, 4096, 4097, 10007, 3 * 13 * 11};
  check_adamw(sizes, 3, {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-5, .weight_decay = 0.01}, 3, 100);
  check_adamw(sizes, 0, {.lr = 3e-4, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.1}, 3, 200);
}

TEST_CASE("emu adamw: many small tensors in one launch", "[emu]") {
  NoLeaks no_leaks;
  std::mt19937 rng(7);
  std::vector<int64_t> sizes;
  for (int i = 0; i < 60; ++i) sizes.push_back(1 + static_cast<int64_t>(rng() % 300));
  check_adamw(sizes, 41, {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-5, .weight_decay = 0.05}, 3, 300);
}

TEST_CASE("emu adamw: in threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  check_adamw({5, 300, 17}, 1, {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-5, .weight_decay = 0.01}, 2, 400);
}

TEST_CASE("emu adamw: a set skip flag leaves t, the parameters and the moments, a clear one steps", "[emu]") {
  NoLeaks no_leaks;
  const std::vector<float> p0 = uniform(5000, 9, -1.f, 1.f), g = uniform(5000, 10, -1.f, 1.f);
  DeviceBuffer<float> p(p0), gr(g), m(std::vector<float>(5000, 0.f)), v(std::vector<float>(5000, 0.f));
  lk::cuda::TensorTable t;
  REQUIRE(lk::cuda::adamw_table({{p.get(), gr.get(), m.get(), v.get(), 5000}}, &t) == cudaSuccess);
  DeviceBuffer<unsigned char> d_table(t.bytes);
  std::vector<double> state(lk::cpu::kAdamWStateSize, 0.0);
  state[lk::cpu::kAdamWLr] = 1e-2;
  DeviceBuffer<double> st(state);
  DeviceBuffer<float> flag(std::vector<float>{1.f});
  REQUIRE(lk::cuda::adamw_step(t, d_table.get(), st.get(), 0.9, 0.999, 1e-5, 0.01, nullptr, flag.get()) ==
          cudaSuccess);
  std::vector<double> want = state;
  CHECK_FALSE(lk::cpu::adamw_advance(want.data(), 0.9, 0.999, 0.01, std::vector<float>{1.f}.data()));
  CHECK(want[lk::cpu::kAdamWStep] == 0.0);
  CHECK(want[lk::cpu::kAdamWSkipped] == 1.0);
  CHECK(st.download() == want);  // the CPU twin agrees bit for bit
  CHECK(p.download() == p0);
  CHECK(m.download() == std::vector<float>(5000, 0.f));
  CHECK(v.download() == std::vector<float>(5000, 0.f));
  REQUIRE(flag.upload(std::vector<float>{0.f}) == cudaSuccess);  // the next step is clean
  REQUIRE(lk::cuda::adamw_step(t, d_table.get(), st.get(), 0.9, 0.999, 1e-5, 0.01, nullptr, flag.get()) ==
          cudaSuccess);
  CHECK(lk::cpu::adamw_advance(want.data(), 0.9, 0.999, 0.01, std::vector<float>{0.f}.data()));
  CHECK(want[lk::cpu::kAdamWStep] == 1.0);
  CHECK(st.download() == want);
  CHECK(p.download() != p0);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

TEST_CASE("emu adamw: nothing to do and invalid tables", "[emu]") {
  NoLeaks no_leaks;
  DeviceBuffer<float> d(4);
  DeviceBuffer<double> st(std::vector<double>(lk::cpu::kAdamWStateSize, 0.0));
  lk::cuda::TensorTable t;
  CHECK(lk::cuda::adamw_table({}, &t) == cudaSuccess);
  CHECK(t.chunks == 0);
  // Only tensors without gradients, or empty ones: only the step count moves.
  CHECK(lk::cuda::adamw_table({{d.get(), nullptr, d.get(), d.get(), 4}, {d.get(), d.get(), d.get(), d.get(), 0}}, &t) ==
        cudaSuccess);
  CHECK(t.chunks == 0);
  const uint64_t launches = lk::simt::stats().launches;
  CHECK(lk::cuda::adamw_step(t, nullptr, st.get(), 0.9, 0.999, 1e-5, 0.01) == cudaSuccess);
  CHECK(lk::simt::stats().launches == launches + 1);
  CHECK(st.download()[lk::cpu::kAdamWStep] == 1.0);
  CHECK(lk::cuda::adamw_table({{d.get(), d.get(), nullptr, d.get(), 4}}, &t) == cudaErrorInvalidValue);  // no m
  CHECK(lk::cuda::adamw_table({{d.get(), d.get(), d.get(), d.get(), -1}}, &t) == cudaErrorInvalidValue);
  CHECK(lk::cuda::adamw_table({{d.get(), d.get(), d.get(), d.get(), 4}}, nullptr) == cudaErrorInvalidValue);
  REQUIRE(lk::cuda::adamw_table({{d.get(), d.get(), d.get(), d.get(), 4}}, &t) == cudaSuccess);
  CHECK(lk::cuda::adamw_step(t, nullptr, st.get(), 0.9, 0.999, 1e-5, 0.01) == cudaErrorInvalidValue);  // no table
  CHECK(lk::cuda::adamw_step(t, d.get(), nullptr, 0.9, 0.999, 1e-5, 0.01) == cudaErrorInvalidValue);  // no state
  // The learning rate is written on the device.
  CHECK(lk::cuda::adamw_set_lr(st.get(), 0.25) == cudaSuccess);
  CHECK(st.download()[lk::cpu::kAdamWLr] == 0.25);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}
