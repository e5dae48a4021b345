// Helpers of the emulator tests: device buffers and value-scaled errors.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>
#include <random>
#include <string>

#include "kernels/cuda/runtime_api.h"
#include "kernels/half.h"
#include "simt/runtime.h"
#include "tests/support/compare.h"

namespace lk::emu_test {

// A cudaMalloc'd array of n T (NaN/0xFF-poisoned by the emulator until written).
template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) { err_ = cudaMalloc(&p_, n * sizeof(T)); }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return p_; }
  size_t size() const { return n_; }
  cudaError_t status() const { return err_; }
  cudaError_t upload(const std::vector<T>& host) {
    return cudaMemcpy(p_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    if (cudaMemcpy(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost) != cudaSuccess) host.clear();
    return host;
  }

 private:
  T* p_ = nullptr;
  size_t n_;
  cudaError_t err_ = cudaSuccess;
};

// max |a - b| / max |ref| (NaN anywhere, or a size mismatch, gives +inf).
using lk::test::scaled_error;

// n floats uniform in [lo, hi), seeded.
inline std::vector<float> uniform(size_t n, unsigned seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// n labels in [0, c) that never use class `absent` (when c > 1), seeded.
inline std::vector<int32_t> labels(size_t n, int64_t c, unsigned seed, int64_t absent) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, static_cast<int32_t>(c - 1));
  std::vector<int32_t> t(n);
  for (int32_t& v : t) {
    do v = d(rng);
    while (c > 1 && v == absent);
  }
  return t;
}

// float <-> double copies (references are often evaluated in double).
inline std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }
inline std::vector<float> narrow(const std::vector<double>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = static_cast<float>(v[i]);
  return r;
}
inline std::vector<double> to_double(const std::vector<float>& v) { return widen(v); }
inline std::vector<float> to_float(const std::vector<double>& v) { return narrow(v); }

// Mixed precision: values rounded to a storage type T (float, bf16, f16) and
// back, and the value-scaled tolerance of a kernel that computes in float
// and rounds each output once to T: half an ulp, u = 2^-8 (bf16's 8
// significant bits), 2^-11 (f16's 11), plus the float kernels' 1e-5.
// Element by element static_cast (a 16-bit type goes through float).
template <typename To, typename From>
std::vector<To> convert(const std::vector<From>& v) {
  std::vector<To> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = static_cast<To>(v[i]);
  return r;
}
template <typename T>
std::vector<T> store(const std::vector<float>& v) {
  return convert<T>(v);
}
template <typename T>
std::vector<float> as_float(const std::vector<T>& v) {
  return convert<float>(v);
}
template <typename T>
std::vector<double> load(const std::vector<T>& v) {
  return convert<double>(v);
}
// v rounded to T and back to float (what a T buffer of v holds).
template <typename T>
std::vector<float> rounded(const std::vector<float>& v) {
  return as_float(store<T>(v));
}
template <typename T>
constexpr double storage_tol() {
  if constexpr (std::is_same_v<T, lk::bf16>) return 1.0 / 256 + 1e-5;
  if constexpr (std::is_same_v<T, lk::f16>) return 1.0 / 2048 + 1e-5;
  return 1e-5;
}

// Checks at scope exit that every cudaMalloc of the scope was freed.
struct NoLeaks {
  size_t before = lk::simt::live_allocations();
  ~NoLeaks() { CHECK(lk::simt::live_allocations() == before); }
};

// Deliberate errors: keep stderr clean, read lk::simt::last_message() instead.
struct Quiet {
  Quiet() { lk::simt::set_quiet(true); }
  ~Quiet() { lk::simt::set_quiet(false); }
};

// The deferred stream policy for the scope (the default; pinned so that
// LKASEG_SIMT_STREAMS=eager does not change tests of planted races).
struct Deferred {
  Deferred() { lk::simt::set_stream_policy(lk::simt::StreamPolicy::Deferred); }
  ~Deferred() { lk::simt::set_stream_policy(std::nullopt); }
};

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

inline bool all_equal(const std::vector<int>& v, int x) {
  return !v.empty() && std::all_of(v.begin(), v.end(), [x](int y) { return y == x; });
}

// A launch's own error, else what running it gave: launches are queued, so an
// execution error shows at the next synchronising call, as on a GPU. The
// error is the last error too (as in CUDA): consumed here, so that the next
// launcher's cudaGetLastError() does not return it again.
inline cudaError_t ran(cudaError_t launched) {
  const cudaError_t e = launched != cudaSuccess ? launched : cudaDeviceSynchronize();
  CHECK(cudaGetLastError() == e);
  return e;
}

}  // namespace lk::emu_test
