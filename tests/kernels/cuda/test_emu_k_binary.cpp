// kernels/cuda/binary.cu under the SIMT emulator against kernels/binary.h.
// The references run in double (the same CPU template, double instantiation),
// so the float kernels are held to the exact result, not to the float CPU
// kernel's own rounding: value-scaled error max|a-b| / max|ref| <= 1e-5.
// Outputs start NaN-poisoned (cudaMalloc); gradients start random, so a
// backward that overwrites instead of adding fails.
#include <catch2/catch.hpp>
#include <random>
#include <ostream>
#include <vector>

#include "kernels/binary.h"
#include "kernels/cuda/binary.h"
#include "tests/kernels/cuda/emu_util.h"

using lk::BinaryOp;
using lk::Dims4;
using namespace lk::emu_test;  // DeviceBuffer, scaled_error, uniform, NoLeaks, ...
using lk::emu_test::DeviceBuffer;
using lk::emu_test::scaled_error;

namespace {

constexpr double kTol = 1e-5;

size_t numel(const Dims4& s) { return static_cast<size_t>(s[0] * s[1] * s[2] * s[3]); }

struct Shape {
  const Dims4& s;
};
std::ostream& operator<<(std::ostream& os, Shape p) {
  return os << "(" << p.s[0] << "," << p.s[1] << "," << p.s[2] << "," << p.s[3] << ")";
}

const char* name(BinaryOp op) { return op == BinaryOp::Add ? "add" : "mul"; }

// Forward y = a op b, then both backward passes (d_a with other = b, d_b with
// other = a), each against the double reference.
void check_binary(BinaryOp op, const Dims4& out, const Dims4& sa, const Dims4& sb, unsigned seed) {
  INFO("binary " << name(op) << " out " << Shape{out} << " a " << Shape{sa} << " b " << Shape{sb});
  const size_t ny = numel(out), na = numel(sa), nb = numel(sb);
  const std::vector<float> a = uniform(na, seed, -2.f, 2.f), b = uniform(nb, seed + 1, -2.f, 2.f),
                           dy = uniform(ny, seed + 2, -1.f, 1.f), da0 = uniform(na, seed + 3, -1.f, 1.f),
                           db0 = uniform(nb, seed + 4, -1.f, 1.f);

  std::vector<double> y_ref(ny), da_ref = widen(da0), db_ref = widen(db0);
  const std::vector<double> a_d = widen(a), b_d = widen(b), dy_d = widen(dy);
  lk::cpu::binary_fwd<double>(op, out, a_d.data(), sa, b_d.data(), sb, y_ref.data());
  lk::cpu::binary_bwd<double>(op, out, dy_d.data(), sa, b_d.data(), sb, da_ref.data());
  lk::cpu::binary_bwd<double>(op, out, dy_d.data(), sb, a_d.data(), sa, db_ref.data());

  DeviceBuffer<float> d_a(a), d_b(b), d_dy(dy), d_da(da0), d_db(db0), d_y(ny);
  REQUIRE(lk::cuda::binary_fwd(op, out, d_a.get(), sa, d_b.get(), sb, d_y.get()) == cudaSuccess);
  CHECK(scaled_error(d_y.download(), narrow(y_ref)) <= kTol);
  REQUIRE(lk::cuda::binary_bwd(op, out, d_dy.get(), sa, d_b.get(), sb, d_da.get()) == cudaSuccess);
  CHECK(scaled_error(d_da.download(), narrow(da_ref)) <= kTol);
  REQUIRE(lk::cuda::binary_bwd(op, out, d_dy.get(), sb, d_a.get(), sa, d_db.get()) == cudaSuccess);
  CHECK(scaled_error(d_db.download(), narrow(db_ref)) <= kTol);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

void check_vector_ops(int64_t n, unsigned seed) {
  INFO("fill/axpy/scale n " << n);
  const std::vector<float> x = uniform(n, seed, -3.f, 3.f), y0 = uniform(n, seed + 1, -3.f, 3.f);
  const float alpha = -0.37f, value = 2.5f;
  std::vector<float> fill_ref(n), axpy_ref = y0, scale_ref = y0;
  lk::cpu::fill<float>(n, value, fill_ref.data());
  lk::cpu::axpy<float>(n, alpha, x.data(), axpy_ref.data());
  for (float& v : scale_ref) v *= alpha;

  DeviceBuffer<float> d_fill(n), d_x(x), d_axpy(y0), d_scale(y0);
  REQUIRE(lk::cuda::fill(n, value, d_fill.get()) == cudaSuccess);
  CHECK(scaled_error(d_fill.download(), fill_ref) == 0);
  REQUIRE(lk::cuda::axpy(n, alpha, d_x.get(), d_axpy.get()) == cudaSuccess);
  CHECK(scaled_error(d_axpy.download(), axpy_ref) <= kTol);
  REQUIRE(lk::cuda::scale(n, alpha, d_scale.get()) == cudaSuccess);
  CHECK(scaled_error(d_scale.download(), scale_ref) == 0);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

}  // namespace

TEST_CASE("emu binary: broadcast add/mul match binary_* on the shape grid", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 1000;
  for (int64_t n : {1, 3})
    for (int64_t c : {1, 3, 17, 64}) {
      const int64_t h = 13, w = 11;
      const Dims4 full{n, c, h, w};
      // The network's broadcasts (SE scale, attention gate, per-channel) and a scalar.
      const Dims4 shapes[] = {{n, c, 1, 1}, {n, 1, h, w}, {1, c, 1, 1}, {1, 1, 1, 1}, full};
      for (BinaryOp op : {BinaryOp::Add, BinaryOp::Mul}) {
        for (const Dims4& s : shapes) {
          check_binary(op, full, full, s, seed++);
          if (s != full) check_binary(op, full, s, full, seed++);
        }
        // Both operands broadcast.
        check_binary(op, full, {n, c, 1, 1}, {n, 1, h, w}, seed++);
      }
    }
}

TEST_CASE("emu binary: every backward reduction strategy", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 2000;
  for (BinaryOp op : {BinaryOp::Add, BinaryOp::Mul}) {
    // Outer dims reduced, many destinations: one thread per destination.
    check_binary(op, {3, 5, 29, 31}, {3, 5, 29, 31}, {3, 1, 29, 31}, seed++);
    // Reduced dims 0 and 2 (not adjacent), strided innermost run: own thread, two reduced dims.
    check_binary(op, {3, 64, 5, 40}, {3, 64, 5, 40}, {1, 64, 1, 40}, seed++);
    // ... with few destinations: a warp each, strided.
    check_binary(op, {3, 5, 7, 9}, {3, 5, 7, 9}, {1, 5, 1, 9}, seed++);
    // Reduced dims 1 and 3: warp per destination, two reduced dims.
    check_binary(op, {3, 5, 7, 9}, {3, 5, 7, 9}, {3, 1, 7, 1}, seed++);
    // Long reductions, few destinations: the whole block per destination.
    check_binary(op, {3, 17, 37, 41}, {3, 17, 37, 41}, {1, 17, 1, 1}, seed++);
    check_binary(op, {2, 3, 29, 31}, {1, 1, 1, 1}, {2, 3, 29, 31}, seed++);
    // Other's broadcasts split the reduced dims into 3 or 4 runs (Mul; Add ignores other):
    // own thread with a 3-dim odometer, a warp and a block with 4 reduced dims.
    check_binary(op, {2, 3, 2, 2100}, {1, 1, 1, 2100}, {2, 1, 2, 2100}, seed++);
    check_binary(op, {2, 3, 4, 5}, {1, 1, 1, 1}, {1, 3, 1, 5}, seed++);
    check_binary(op, {2, 3, 40, 50}, {1, 1, 1, 1}, {1, 3, 1, 50}, seed++);
    // Size-1 output dims and rank < 4 shapes padded on the left.
    check_binary(op, {1, 1, 1, 300}, {1, 1, 1, 300}, {1, 1, 1, 1}, seed++);
    check_binary(op, {1, 4, 1, 7}, {1, 4, 1, 1}, {1, 1, 1, 7}, seed++);
  }
}

TEST_CASE("emu binary: backward reductions in threads mode", "[emu]") {
  const lk::simt::ScopedMode threads(lk::simt::Mode::Threads);
  NoLeaks no_leaks;
  check_binary(BinaryOp::Mul, {2, 3, 9, 7}, {2, 3, 9, 7}, {2, 3, 1, 1}, 3000);     // warp per destination
  check_binary(BinaryOp::Add, {1, 2, 71, 61}, {1, 2, 71, 61}, {1, 2, 1, 1}, 3001);  // block per destination
}

TEST_CASE("emu binary: fill, axpy and scale", "[emu]") {
  NoLeaks no_leaks;
  unsigned seed = 4000;
  // 270000 > 1024 blocks * 256 threads: the grid-stride loop wraps.
  for (int64_t n : {1, 7, 255, 257, 4099, 270000}) check_vector_ops(n, seed++);
}

TEST_CASE("emu binary: empty and invalid shapes", "[emu]") {
  NoLeaks no_leaks;
  CHECK(lk::cuda::binary_fwd<float>(BinaryOp::Add, {0, 3, 4, 4}, nullptr, {0, 3, 4, 4}, nullptr, {1, 3, 1, 1}, nullptr) ==
        cudaSuccess);
  CHECK(lk::cuda::binary_bwd<float>(BinaryOp::Mul, {2, 0, 4, 4}, nullptr, {2, 0, 4, 4}, nullptr, {1, 1, 1, 1}, nullptr) ==
        cudaErrorInvalidValue);  // Mul needs `other`
  CHECK(lk::cuda::binary_bwd<float>(BinaryOp::Add, {2, 0, 4, 4}, nullptr, {2, 0, 4, 4}, nullptr, {1, 1, 1, 1}, nullptr) ==
        cudaSuccess);
  CHECK(lk::cuda::binary_fwd<float>(BinaryOp::Add, {2, 3, 4, 4}, nullptr, {2, 2, 4, 4}, nullptr, {1, 1, 1, 1}, nullptr) ==
        cudaErrorInvalidValue);
  CHECK(lk::cuda::binary_bwd<float>(BinaryOp::Mul, {2, 3, 4, 4}, nullptr, {2, 3, 4, 4}, nullptr, {1, 3, 2, 1}, nullptr) ==
        cudaErrorInvalidValue);
  CHECK(lk::cuda::fill<float>(0, 1.f, nullptr) == cudaSuccess);
  CHECK(lk::cuda::axpy<float>(-1, 1.f, nullptr, nullptr) == cudaErrorInvalidValue);
  CHECK(lk::cuda::scale<float>(0, 1.f, nullptr) == cudaSuccess);
}
