// kernels/half.h: the 16-bit storage types convert exactly to float, and
// float rounds to them to nearest, ties to even, with NaN kept NaN and
// overflow to infinity: checked exhaustively over all 65536 bit patterns
// (round trips, and the float values at, just below and just above every
// midpoint between neighbouring representable values). Also Tensor::to
// through the engine's dtypes.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "engine/tensor.h"
#include "kernels/half.h"

namespace {

float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// The float next to f towards +inf / -inf (f finite).
float up(float f) { return std::nextafter(f, std::numeric_limits<float>::infinity()); }
float down(float f) { return std::nextafter(f, -std::numeric_limits<float>::infinity()); }

template <typename H>
bool is_nan_bits(uint16_t b);
template <>
bool is_nan_bits<lk::bf16>(uint16_t b) {
  return (b & 0x7f80u) == 0x7f80u && (b & 0x7fu);
}
template <>
bool is_nan_bits<lk::f16>(uint16_t b) {
  return (b & 0x7c00u) == 0x7c00u && (b & 0x3ffu);
}
template <typename H>
uint16_t inf_bits();
template <>
uint16_t inf_bits<lk::bf16>() {
  return 0x7f80u;
}
template <>
uint16_t inf_bits<lk::f16>() {
  return 0x7c00u;
}

template <typename H>
void check_exhaustive() {
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    const H h = H::from_bits(static_cast<uint16_t>(b));
    const float f = h;
    if (is_nan_bits<H>(static_cast<uint16_t>(b))) {
      REQUIRE(std::isnan(f));
      REQUIRE(is_nan_bits<H>(H(f).bits));
      continue;
    }
    INFO("bits " << b << " value " << f);
    REQUIRE(H(f).bits == b);  // exact round trip (both zeros, both infinities)
    // The next representable magnitude (b + 1 within the sign's half) and
    // the midpoint to it: ties go to the even one, anything off the tie to
    // the nearer one.
    const uint32_t mag = b & 0x7fffu;
    if (mag + 1 >= inf_bits<H>()) continue;  // the largest finite and infinity: checked by hand below
    const H next = H::from_bits(static_cast<uint16_t>(b + 1));
    const float g = next;
    const double mid = (static_cast<double>(f) + static_cast<double>(g)) / 2;
    const float m = static_cast<float>(mid);
    REQUIRE(static_cast<double>(m) == mid);  // midpoints are floats
    const uint16_t even = (b & 1u) ? static_cast<uint16_t>(b + 1) : static_cast<uint16_t>(b);
    REQUIRE(H(m).bits == even);
    const float towards_f = f < g ? down(m) : up(m), towards_g = f < g ? up(m) : down(m);
    REQUIRE(H(towards_f).bits == b);
    REQUIRE(H(towards_g).bits == b + 1);
  }
}

}  // namespace

TEST_CASE("half: bf16 converts exactly and rounds to nearest even, exhaustively", "[cpu]") {
  check_exhaustive<lk::bf16>();
  CHECK(lk::bf16(3.0e38f * 10.f).bits == 0x7f80u);               // float infinity stays infinity
  CHECK(lk::bf16(bits_float(0x7f7fffffu)).bits == 0x7f80u);       // FLT_MAX rounds up to infinity
  CHECK(lk::bf16(-0.0f).bits == 0x8000u);
  CHECK(std::isnan(static_cast<float>(lk::bf16(std::nanf("")))));
}

TEST_CASE("half: f16 converts exactly and rounds to nearest even, exhaustively", "[cpu]") {
  check_exhaustive<lk::f16>();
  CHECK(lk::f16(65504.f).bits == 0x7bffu);
  CHECK(lk::f16(65519.f).bits == 0x7bffu);   // below the tie: the largest finite
  CHECK(lk::f16(65520.f).bits == 0x7c00u);   // the tie: to even, which is infinity
  CHECK(lk::f16(1e6f).bits == 0x7c00u);
  CHECK(lk::f16(bits_float(0x33000000u)).bits == 0x0000u);  // 2^-25: the tie below the smallest subnormal, to even (0)
  CHECK(lk::f16(up(bits_float(0x33000000u))).bits == 0x0001u);
  CHECK(lk::f16(-1e-10f).bits == 0x8000u);
}

TEST_CASE("half: Tensor::to converts through the 16-bit dtypes", "[cpu]") {
  using lk::DType;
  const lk::Tensor x = lk::Tensor::from_vector({1.0, -2.5, 1.0 / 3.0, 70000.0, 1e-6}, {5});
  CHECK(lk::dtype_size(DType::BF16) == 2);
  CHECK(lk::dtype_size(DType::F16) == 2);
  CHECK(std::string(lk::dtype_name(DType::BF16)) == "bfloat16");
  const std::vector<double> b = x.to(DType::BF16).to_vector(), h = x.to(DType::F16).to_vector();
  CHECK(b[0] == 1.0);
  CHECK(b[1] == -2.5);
  CHECK(b[2] == static_cast<float>(lk::bf16(1.0f / 3.0f)));
  CHECK(std::abs(b[2] - 1.0 / 3.0) < 1.0 / 3.0 / 128);  // 8 significant bits
  CHECK(b[3] == 70144.0);                                // bf16 has float's range
  CHECK(std::isinf(h[3]));                               // f16 does not
  CHECK(std::abs(h[2] - 1.0 / 3.0) < 1.0 / 3.0 / 1024);  // 11 significant bits
  CHECK(h[4] == static_cast<float>(lk::f16(1e-6f)));     // a subnormal
  lk::Tensor z = lk::Tensor::zeros({3}, DType::BF16);
  z.fill_(0.1);
  CHECK(z.to_vector()[2] == static_cast<float>(lk::bf16(0.1f)));
}
