// kernels/cuda/batch_norm.cu's fused forms (batch_norm_relu_fwd/bwd) and its
// plain batch norm in every storage type, under the SIMT emulator against
// the CPU kernels (kernels/batch_norm_relu.h, kernels/batch_norm.h) run in
// double on the same inputs. Inputs are rounded to the storage type T first,
// so the reference sees exactly what the device reads.
//
// Tolerance (value-scaled error max|a - b| / max|ref|): float 1e-5 as the
// other kernels; bf16 2^-8 and f16 2^-11 (+1e-5): the device computes in
// float and rounds each activation output once to T, an error of at most
// half an ulp, u|v| <= u max|ref| (u = 2^-8 for bf16's 8 significant bits,
// 2^-11 for f16's 11). Statistics, parameter gradients and running stats
// stay float (1e-5 in every type). Outputs start NaN-poisoned (written) or
// random (added to).
#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "kernels/batch_norm.h"
#include "kernels/batch_norm_relu.h"
#include "kernels/cuda/batch_norm.h"
#include "tests/kernels/cuda/emu_util.h"

using lk::BnResidual;
using lk::bf16;
using lk::f16;
using namespace lk::emu_test;  // DeviceBuffer, scaled_error, uniform, NoLeaks, ...

namespace {

constexpr double kMomentum = 0.1, kEps = 1e-5, kStatTol = 1e-5;

const char* mode_name(BnResidual m) {
  return m == BnResidual::None ? "none" : m == BnResidual::AfterRelu ? "after relu" : "before relu";
}

struct Case {
  int64_t n, c, hw;
  bool training;
  BnResidual mode;
  bool accumulate = true;
  bool want_dx = true, want_dr = true, want_dg = true, want_db = true;
};

// Forward and backward of one case in storage type T.
template <typename T>
void check_fused(const Case& k, unsigned seed) {
  INFO("batch_norm_relu " << sizeof(T) << "-byte n " << k.n << " c " << k.c << " hw " << k.hw << " training "
                          << k.training << " mode " << mode_name(k.mode) << " accumulate " << k.accumulate);
  const int64_t n = k.n, c = k.c, hw = k.hw;
  const size_t sz = static_cast<size_t>(n * c * hw), cs = static_cast<size_t>(c);
  const bool res = k.mode != BnResidual::None;
  // x around a per-channel offset, so about half of z is below zero.
  std::vector<float> xf = uniform(sz, seed, -2.f, 2.f);
  const std::vector<float> off = uniform(cs, seed + 1, -3.f, 3.f);
  for (size_t i = 0; i < sz; ++i) xf[i] += off[(i / hw) % cs];
  const std::vector<T> x = store<T>(xf), r = store<T>(uniform(sz, seed + 2, -1.f, 1.f)),
                       dy = store<T>(uniform(sz, seed + 3, -1.f, 1.f)), dx0 = store<T>(uniform(sz, seed + 4, -1.f, 1.f)),
                       dr0 = store<T>(uniform(sz, seed + 5, -1.f, 1.f));
  const std::vector<float> gamma = uniform(cs, seed + 6, 0.5f, 1.5f), beta = uniform(cs, seed + 7, -0.5f, 0.5f),
                           rm0 = uniform(cs, seed + 8, -1.f, 1.f), rv0 = uniform(cs, seed + 9, 0.5f, 2.f),
                           dg0 = uniform(cs, seed + 10, -1.f, 1.f), db0 = uniform(cs, seed + 11, -1.f, 1.f);

  // Forward.
  const std::vector<double> xd = load(x), rd = load(r), gd = widen(gamma), bd = widen(beta);
  std::vector<double> y_ref(sz), rm_ref = widen(rm0), rv_ref = widen(rv0), sm_ref(cs), si_ref(cs);
  lk::cpu::batch_norm_relu_fwd<double>(n, c, hw, xd.data(), gd.data(), bd.data(), rm_ref.data(), rv_ref.data(),
                                       k.training, kMomentum, kEps, res ? rd.data() : nullptr, k.mode, y_ref.data(),
                                       sm_ref.data(), si_ref.data());
  const size_t ws = lk::cuda::batch_norm_workspace_bytes(n, c, hw);
  DeviceBuffer<double> d_ws(ws / sizeof(double));
  DeviceBuffer<T> d_x(x), d_r(r), d_y(sz);
  DeviceBuffer<float> d_g(gamma), d_b(beta), d_rm(rm0), d_rv(rv0), d_sm(cs), d_si(cs);
  REQUIRE(lk::cuda::batch_norm_relu_fwd<T>(n, c, hw, d_x.get(), d_g.get(), d_b.get(), d_rm.get(), d_rv.get(),
                                           k.training, kMomentum, kEps, res ? d_r.get() : nullptr, k.mode, d_y.get(),
                                           d_sm.get(), d_si.get(), d_ws.get(), ws) == cudaSuccess);
  const std::vector<T> y = d_y.download();
  CHECK(scaled_error(as_float(y), narrow(y_ref)) <= storage_tol<T>());
  CHECK(scaled_error(d_sm.download(), narrow(sm_ref)) <= kStatTol);
  CHECK(scaled_error(d_si.download(), narrow(si_ref)) <= kStatTol);
  CHECK(scaled_error(d_rm.download(), narrow(rm_ref)) <= kStatTol);
  CHECK(scaled_error(d_rv.download(), narrow(rv_ref)) <= kStatTol);

  // Backward from the device's saved statistics (float) and, for
  // BeforeRelu, its y (the mask), as the engine would pass them.
  const std::vector<float> sm = d_sm.download(), si = d_si.download();
  const std::vector<double> smd = widen(sm), sid = widen(si), dyd = load(dy), yd = load(y);
  std::vector<double> dx_ref = load(dx0), dr_ref = load(dr0), dg_ref = widen(dg0), db_ref = widen(db0);
  if (!k.accumulate)
    for (auto* v : {&dx_ref, &dr_ref, &dg_ref, &db_ref}) std::fill(v->begin(), v->end(), 0.0);
  const bool want_dr = k.want_dr && res;
  lk::cpu::batch_norm_relu_bwd<double>(n, c, hw, k.mode, dyd.data(), xd.data(), yd.data(), gd.data(), bd.data(),
                                       smd.data(), sid.data(), k.training, k.want_dx ? dx_ref.data() : nullptr,
                                       want_dr ? dr_ref.data() : nullptr, k.want_dg ? dg_ref.data() : nullptr,
                                       k.want_db ? db_ref.data() : nullptr);
  DeviceBuffer<T> d_dy(dy), d_dx(sz), d_dr(sz);
  DeviceBuffer<float> d_dg(cs), d_db(cs);
  if (k.accumulate) {
    REQUIRE(d_dx.upload(dx0) == cudaSuccess);
    REQUIRE(d_dr.upload(dr0) == cudaSuccess);
    REQUIRE(d_dg.upload(dg0) == cudaSuccess);
    REQUIRE(d_db.upload(db0) == cudaSuccess);
  }
  REQUIRE(lk::cuda::batch_norm_relu_bwd<T>(n, c, hw, k.mode, d_dy.get(), d_x.get(), d_y.get(), d_g.get(), d_b.get(),
                                           d_sm.get(), d_si.get(), k.training, k.want_dx ? d_dx.get() : nullptr,
                                           want_dr ? d_dr.get() : nullptr, k.want_dg ? d_dg.get() : nullptr,
                                           k.want_db ? d_db.get() : nullptr, d_ws.get(), ws, nullptr, k.accumulate,
                                           k.accumulate, k.accumulate, k.accumulate) == cudaSuccess);
  if (k.want_dx) CHECK(scaled_error(as_float(d_dx.download()), narrow(dx_ref)) <= storage_tol<T>());
  if (want_dr) CHECK(scaled_error(as_float(d_dr.download()), narrow(dr_ref)) <= storage_tol<T>());
  if (k.want_dg) CHECK(scaled_error(d_dg.download(), narrow(dg_ref)) <= kStatTol);
  if (k.want_db) CHECK(scaled_error(d_db.download(), narrow(db_ref)) <= kStatTol);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

// The plain batch norm in storage type T against kernels/batch_norm.h.
template <typename T>
void check_plain(int64_t n, int64_t c, int64_t hw, bool training, unsigned seed) {
  INFO("batch_norm " << sizeof(T) << "-byte n " << n << " c " << c << " hw " << hw << " training " << training);
  const size_t sz = static_cast<size_t>(n * c * hw), cs = static_cast<size_t>(c);
  const std::vector<T> x = store<T>(uniform(sz, seed, -3.f, 5.f)), dy = store<T>(uniform(sz, seed + 1, -1.f, 1.f));
  const std::vector<float> gamma = uniform(cs, seed + 2, 0.5f, 1.5f), beta = uniform(cs, seed + 3, -1.f, 1.f);
  const std::vector<double> xd = load(x), dyd = load(dy), gd = widen(gamma), bd = widen(beta);
  std::vector<double> y_ref(sz), rm(cs, 0.0), rv(cs, 1.0), sm(cs), si(cs), dx_ref(sz, 0.0), dg_ref(cs, 0.0),
      db_ref(cs, 0.0);
  lk::cpu::batch_norm_fwd<double>(n, c, hw, xd.data(), gd.data(), bd.data(), rm.data(), rv.data(), training, kMomentum,
                                  kEps, y_ref.data(), sm.data(), si.data());
  const size_t ws = lk::cuda::batch_norm_workspace_bytes(n, c, hw);
  DeviceBuffer<double> d_ws(ws / sizeof(double));
  DeviceBuffer<T> d_x(x), d_y(sz), d_dy(dy), d_dx(sz);
  DeviceBuffer<float> d_g(gamma), d_b(beta), d_rm(std::vector<float>(cs, 0.f)), d_rv(std::vector<float>(cs, 1.f)),
      d_sm(cs), d_si(cs), d_dg(cs), d_db(cs);
  REQUIRE(lk::cuda::batch_norm_fwd<T>(n, c, hw, d_x.get(), d_g.get(), d_b.get(), d_rm.get(), d_rv.get(), training,
                                      kMomentum, kEps, d_y.get(), d_sm.get(), d_si.get(), d_ws.get(), ws) ==
          cudaSuccess);
  CHECK(scaled_error(as_float(d_y.download()), narrow(y_ref)) <= storage_tol<T>());
  const std::vector<double> smd = widen(d_sm.download()), sid = widen(d_si.download());
  lk::cpu::batch_norm_bwd<double>(n, c, hw, dyd.data(), xd.data(), gd.data(), smd.data(), sid.data(), training,
                                  dx_ref.data(), dg_ref.data(), db_ref.data());
  REQUIRE(lk::cuda::batch_norm_bwd<T>(n, c, hw, d_dy.get(), d_x.get(), d_g.get(), d_sm.get(), d_si.get(), training,
                                      d_dx.get(), d_dg.get(), d_db.get(), d_ws.get(), ws, nullptr, false, false,
                                      false) == cudaSuccess);
  CHECK(scaled_error(as_float(d_dx.download()), narrow(dx_ref)) <= storage_tol<T>());
  CHECK(scaled_error(d_dg.download(), narrow(dg_ref)) <= kStatTol);
  CHECK(scaled_error(d_db.download(), narrow(db_ref)) <= kStatTol);
}

template <typename T>
void fused_grid(unsigned seed) {
  for (BnResidual mode : {BnResidual::None, BnResidual::AfterRelu, BnResidual::BeforeRelu})
    for (bool training : {true, false}) {
      check_fused<T>({2, 3, 13 * 11, training, mode}, seed += 20);
      check_fused<T>({3, 2, 61 * 47, training, mode, false}, seed += 20);  // two chunks per plane; written
    }
}

}  // namespace

TEST_CASE("emu batch_norm_relu: every residual mode, float", "[emu]") {
  NoLeaks no_leaks;
  fused_grid<float>(100);
  check_fused<float>({1, 17, 64, true, BnResidual::AfterRelu}, 900);  // 64-thread blocks
}

TEST_CASE("emu batch_norm_relu: bf16 and f16 storage", "[emu]") {
  NoLeaks no_leaks;
  fused_grid<bf16>(1000);
  fused_grid<f16>(2000);
}

TEST_CASE("emu batch_norm_relu: partial gradients", "[emu]") {
  NoLeaks no_leaks;
  Case k{2, 3, 99, true, BnResidual::AfterRelu};
  k.want_dx = false;  // dr, dgamma, dbeta
  check_fused<float>(k, 3000);
  k = {2, 3, 99, true, BnResidual::BeforeRelu};
  k.want_dg = k.want_db = k.want_dx = false;  // dr only
  check_fused<float>(k, 3010);
  k = {2, 3, 99, false, BnResidual::None};
  k.want_dg = k.want_db = false;  // evaluation, dx only: no reduction pass
  check_fused<float>(k, 3020);
}

TEST_CASE("emu batch_norm_relu: threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  check_fused<float>({2, 2, 63, true, BnResidual::AfterRelu}, 4000);   // one block per channel
  check_fused<float>({1, 2, 4097, true, BnResidual::BeforeRelu}, 4010);  // the two-pass grid
}

TEST_CASE("emu batch_norm_relu: both sides of the whole-channel bound", "[emu]") {
  // n * hw <= kBatchNormWholeChannel: one block per channel, one launch per
  // pass; above it the N*C x chunks grid in two launches. Same results.
  NoLeaks no_leaks;
  static_assert(lk::cuda::kBatchNormWholeChannel == 4096);
  unsigned seed = 6000;
  for (BnResidual mode : {BnResidual::None, BnResidual::AfterRelu, BnResidual::BeforeRelu}) {
    check_fused<float>({2, 2, 2048, true, mode}, seed += 20);          // 4096: whole
    check_fused<float>({1, 2, 4097, true, mode, false}, seed += 20);   // 4097: chunked, written
    check_fused<bf16>({4, 3, 1024, true, mode, false}, seed += 20);    // whole, written
  }
  check_fused<float>({2, 1, 1, true, BnResidual::None}, seed += 20);  // two values: the smallest training batch
}

TEST_CASE("emu batch_norm: bf16 and f16 storage against the float reference", "[emu]") {
  NoLeaks no_leaks;
  for (bool training : {true, false}) {
    check_plain<bf16>(2, 3, 61 * 47, training, 5000);
    check_plain<f16>(2, 3, 61 * 47, training, 5100);
    check_plain<float>(2, 3, 13 * 11, training, 5200);
  }
}

TEST_CASE("emu batch_norm_relu: refuses a missing residual or workspace", "[emu]") {
  NoLeaks no_leaks;
  DeviceBuffer<double> ws(64);
  float dummy[4] = {};
  CHECK(lk::cuda::batch_norm_relu_fwd<float>(2, 1, 2, dummy, dummy, dummy, dummy, dummy, true, 0.1, 1e-5, nullptr,
                                             BnResidual::AfterRelu, dummy, dummy, dummy, ws.get(),
                                             64 * sizeof(double)) == cudaErrorInvalidValue);
  CHECK(lk::cuda::batch_norm_relu_fwd<float>(2, 1, 2, dummy, dummy, dummy, dummy, dummy, true, 0.1, 1e-5, nullptr,
                                             BnResidual::None, dummy, dummy, dummy, nullptr, 0) == cudaErrorInvalidValue);
  CHECK(lk::cuda::batch_norm_relu_bwd<float>(2, 1, 2, BnResidual::BeforeRelu, dummy, dummy, nullptr, dummy, dummy,
                                             dummy, dummy, true, dummy, nullptr, nullptr, nullptr, ws.get(),
                                             64 * sizeof(double)) == cudaErrorInvalidValue);  // no y for the mask
}
