// kernels/cuda/lka_gate.cu (the LKA tail Y = X * sigmoid(BN(F3)), fused) run
// by the SIMT emulator against the composition of the CPU kernels it fuses:
// batch_norm_fwd/bwd, activation_fwd/bwd(Sigmoid), binary_fwd/bwd(Mul), in
// double, through cudaMalloc/cudaMemcpy (NaN-poisoned, guarded). Value-scaled
// errors <= 1e-5: the device keeps float elementwise math and double
// reductions; against a double reference that leaves ~1e-6 at most (F3 is
// offset from 0 so the statistics see a real mean).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/activation.h"
#include "kernels/batch_norm.h"
#include "kernels/binary.h"
#include "kernels/cuda/lka_gate.h"
#include "tests/kernels/cuda/emu_util.h"

using lk::Activation;
using lk::BinaryOp;
using lk::Dims4;
using namespace lk::emu_test;  // DeviceBuffer, scaled_error, uniform, NoLeaks, ...
using lk::emu_test::DeviceBuffer;
using lk::emu_test::scaled_error;

namespace {

constexpr double kTol = 1e-5;
constexpr double kMomentum = 0.1, kEps = 1e-5;

// The unfused tail on the CPU, in double.
struct Reference {
  std::vector<double> y, a, save_mean, save_invstd, rmean, rvar;  // forward
  std::vector<double> dx, df3, dgamma, dbeta;                     // backward (added to the initial values)
};

struct Case {
  int64_t n, c, hw;
  bool training;
  bool want_dx = true, want_df3 = true, want_dgamma = true, want_dbeta = true, want_a = false;
  bool accumulate = true;  // false: the gradients are written (they start NaN-poisoned)
};

template <typename T = float>
void check_gate(const Case& k, unsigned seed) {
  INFO("lka gate " << sizeof(T) << "-byte n " << k.n << " c " << k.c << " hw " << k.hw << " training " << k.training << " dx " << k.want_dx
                     << " df3 " << k.want_df3 << " dgamma " << k.want_dgamma << " dbeta " << k.want_dbeta);
  const int64_t n = k.n, c = k.c, hw = k.hw;
  const size_t sz = static_cast<size_t>(n * c * hw), cs = static_cast<size_t>(c);
  // Activations rounded to T, so the float reference sees what the device reads.
  const std::vector<float> x = rounded<T>(uniform(sz, seed, -2.f, 2.f)), f3 = rounded<T>(uniform(sz, seed + 1, 1.f, 4.f)),
                           gamma = uniform(cs, seed + 2, 0.5f, 1.5f), beta = uniform(cs, seed + 3, -0.5f, 0.5f),
                           rmean0 = uniform(cs, seed + 4, 2.f, 3.f), rvar0 = uniform(cs, seed + 5, 0.5f, 1.f),
                           dy = rounded<T>(uniform(sz, seed + 6, -1.f, 1.f)),
                           dx0 = rounded<T>(uniform(sz, seed + 7, -1.f, 1.f)),
                           df30 = rounded<T>(uniform(sz, seed + 8, -1.f, 1.f)), dg0 = uniform(cs, seed + 9, -1.f, 1.f),
                           db0 = uniform(cs, seed + 10, -1.f, 1.f);
  const double tol = storage_tol<T>();

  // Forward reference: Z = BN(F3), A = sigmoid(Z), Y = X * A.
  Reference r;
  const std::vector<double> xd = to_double(x), fd = to_double(f3), gd = to_double(gamma), bd = to_double(beta);
  r.rmean = to_double(rmean0), r.rvar = to_double(rvar0);
  std::vector<double> z(sz);
  r.a.resize(sz), r.y.resize(sz), r.save_mean.resize(cs), r.save_invstd.resize(cs);
  lk::cpu::batch_norm_fwd<double>(n, c, hw, fd.data(), gd.data(), bd.data(), r.rmean.data(), r.rvar.data(), k.training,
                                  kMomentum, kEps, z.data(), r.save_mean.data(), r.save_invstd.data());
  lk::cpu::activation_fwd<double>(Activation::Sigmoid, static_cast<int64_t>(sz), z.data(), r.a.data());
  const Dims4 shape{n, c, 1, hw};
  lk::cpu::binary_fwd<double>(BinaryOp::Mul, shape, xd.data(), shape, r.a.data(), shape, r.y.data());

  const size_t ws_bytes = lk::cuda::lka_gate_workspace_bytes(n, c, hw);
  DeviceBuffer<unsigned char> ws(ws_bytes);
  DeviceBuffer<T> d_x(store<T>(x)), d_f3(store<T>(f3)), d_y(sz), d_a(sz);
  DeviceBuffer<float> d_gamma(gamma), d_beta(beta), d_rmean(rmean0), d_rvar(rvar0), d_smean(cs), d_sinv(cs);
  REQUIRE(lk::cuda::lka_gate_fwd(n, c, hw, d_x.get(), d_f3.get(), d_gamma.get(), d_beta.get(), d_rmean.get(),
                                 d_rvar.get(), k.training, kMomentum, kEps, d_y.get(), d_smean.get(), d_sinv.get(),
                                 k.want_a ? d_a.get() : nullptr, ws.get(), ws_bytes) == cudaSuccess);
  CHECK(scaled_error(as_float(d_y.download()), to_float(r.y)) <= tol);
  CHECK(scaled_error(d_smean.download(), to_float(r.save_mean)) <= kTol);
  CHECK(scaled_error(d_sinv.download(), to_float(r.save_invstd)) <= kTol);
  CHECK(scaled_error(d_rmean.download(), to_float(r.rmean)) <= kTol);
  CHECK(scaled_error(d_rvar.download(), to_float(r.rvar)) <= kTol);
  if (k.want_a) CHECK(scaled_error(as_float(d_a.download()), to_float(r.a)) <= tol);

  // Backward reference from the float-rounded saved statistics (what the
  // device keeps): dA = dY * X, dX += dY * A, dZ = dA * A (1 - A), then BN.
  const std::vector<float> smean_f = to_float(r.save_mean), sinv_f = to_float(r.save_invstd);
  const std::vector<double> smean = to_double(smean_f), sinv = to_double(sinv_f), dyd = to_double(dy);
  std::vector<double> zr(sz), ar(sz), da(sz, 0.0), dz(sz, 0.0);
  r.dx = to_double(dx0), r.df3 = to_double(df30), r.dgamma = to_double(dg0), r.dbeta = to_double(db0);
  if (!k.accumulate)
    for (auto* v : {&r.dx, &r.df3, &r.dgamma, &r.dbeta}) std::fill(v->begin(), v->end(), 0.0);
  {
    // A from the saved statistics, as the device recomputes it.
    for (int64_t i = 0; i < n; ++i)
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t p = 0; p < hw; ++p) {
          const size_t j = static_cast<size_t>((i * c + ch) * hw + p);
          zr[j] = gd[ch] * sinv[ch] * (fd[j] - smean[ch]) + bd[ch];
        }
    lk::cpu::activation_fwd<double>(Activation::Sigmoid, static_cast<int64_t>(sz), zr.data(), ar.data());
  }
  lk::cpu::binary_bwd<double>(BinaryOp::Mul, shape, dyd.data(), shape, xd.data(), shape, da.data());
  lk::cpu::binary_bwd<double>(BinaryOp::Mul, shape, dyd.data(), shape, ar.data(), shape, r.dx.data());
  lk::cpu::activation_bwd<double>(Activation::Sigmoid, static_cast<int64_t>(sz), da.data(), ar.data(), dz.data());
  lk::cpu::batch_norm_bwd<double>(n, c, hw, dz.data(), fd.data(), gd.data(), smean.data(), sinv.data(), k.training,
                                  r.df3.data(), r.dgamma.data(), r.dbeta.data());

  DeviceBuffer<T> d_dy(store<T>(dy)), d_dx(sz), d_df3(sz);
  DeviceBuffer<float> d_dg(cs), d_db(cs);
  if (k.accumulate || !k.want_dx) REQUIRE(d_dx.upload(store<T>(dx0)) == cudaSuccess);
  if (k.accumulate || !k.want_df3) REQUIRE(d_df3.upload(store<T>(df30)) == cudaSuccess);
  if (k.accumulate || !k.want_dgamma) REQUIRE(d_dg.upload(dg0) == cudaSuccess);
  if (k.accumulate || !k.want_dbeta) REQUIRE(d_db.upload(db0) == cudaSuccess);
  REQUIRE(d_smean.upload(smean_f) == cudaSuccess);
  REQUIRE(d_sinv.upload(sinv_f) == cudaSuccess);
  REQUIRE(lk::cuda::lka_gate_bwd(n, c, hw, d_dy.get(), d_x.get(), d_f3.get(), d_gamma.get(), d_beta.get(),
                                 d_smean.get(), d_sinv.get(), k.training, k.want_dx ? d_dx.get() : nullptr,
                                 k.want_df3 ? d_df3.get() : nullptr, k.want_dgamma ? d_dg.get() : nullptr,
                                 k.want_dbeta ? d_db.get() : nullptr, ws.get(), ws_bytes, nullptr, k.accumulate,
                                 k.accumulate, k.accumulate, k.accumulate) == cudaSuccess);
  // Outputs not asked for stay as they were.
  CHECK(scaled_error(as_float(d_dx.download()), k.want_dx ? to_float(r.dx) : dx0) <= tol);
  CHECK(scaled_error(as_float(d_df3.download()), k.want_df3 ? to_float(r.df3) : df30) <= tol);
  CHECK(scaled_error(d_dg.download(), k.want_dgamma ? to_float(r.dgamma) : dg0) <= kTol);
  CHECK(scaled_error(d_db.download(), k.want_dbeta ? to_float(r.dbeta) : db0) <= kTol);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

}  // namespace

TEST_CASE("emu lka_gate: fused BN + sigmoid + gate matches the composed CPU kernels", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 1;
  for (int64_t n : {1, 3})
    for (int64_t c : {1, 3, 17, 64})
      for (bool training : {true, false}) check_gate({n, c, 13 * 11, training}, seed += 11);
}

TEST_CASE("emu lka_gate: several chunks per plane, A materialised", "[emu]") {
  NoLeaks no_leaks;
  // 4173 pixels: 3 chunks of 1391 per (image, channel) plane.
  check_gate({2, 3, 4173, true, true, true, true, true, true}, 500);
  check_gate({2, 3, 4173, false, true, true, true, true, true}, 600);
}

TEST_CASE("emu lka_gate: backward with some gradients not requested", "[emu]") {
  NoLeaks no_leaks;
  check_gate({2, 5, 99, true, true, false, true, false}, 700);   // dx, dgamma
  check_gate({2, 5, 99, true, false, true, false, false}, 710);  // df3 only
  check_gate({2, 5, 99, true, true, false, false, false}, 720);  // dx only
}

TEST_CASE("emu lka_gate: bf16 and f16 storage against the float reference", "[emu]") {
  NoLeaks no_leaks;
  for (bool training : {true, false}) {
    check_gate<lk::bf16>({2, 3, 4173, training}, 780);
    check_gate<lk::f16>({2, 3, 4173, training}, 790);
  }
}

TEST_CASE("emu lka_gate: gradients written instead of added", "[emu]") {
  NoLeaks no_leaks;
  Case k{2, 3, 4173, true};
  k.accumulate = false;
  check_gate(k, 750);
  k = {2, 5, 99, false, true, false, true, false};  // evaluation; dx and dgamma
  k.accumulate = false;
  check_gate(k, 760);
}

TEST_CASE("emu lka_gate: threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  check_gate({2, 3, 300, true}, 800);
}

TEST_CASE("emu lka_gate: refuses a missing or too small workspace", "[emu]") {
  const size_t ws = lk::cuda::lka_gate_workspace_bytes(2, 3, 10);
  CHECK(ws > 0);
  float dummy = 0;
  CHECK(lk::cuda::lka_gate_fwd<float>(2, 3, 10, &dummy, &dummy, &dummy, &dummy, &dummy, &dummy, true, kMomentum, kEps, &dummy,
                               &dummy, &dummy, nullptr, nullptr, ws) == cudaErrorInvalidValue);
  CHECK(lk::cuda::lka_gate_bwd(2, 3, 10, &dummy, &dummy, &dummy, &dummy, &dummy, &dummy, &dummy, true, &dummy, &dummy,
                               &dummy, &dummy, &dummy, ws - 1) == cudaErrorInvalidValue);
  CHECK(lk::cuda::lka_gate_fwd<float>(2, 0, 10, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, true, kMomentum, kEps,
                               nullptr, nullptr, nullptr, nullptr, &dummy, ws) == cudaErrorInvalidValue);
}
