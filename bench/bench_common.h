// Shared helpers of the CPU op benchmarks: the paper model's shapes, cheap
// deterministic input data, the value-scaled error used to validate a fast
// kernel against its reference before timing it, and the counter helpers.
//
// Every benchmark calls the Backend of the CPU device directly, so only the
// op's arithmetic is timed: no shape checks, no output allocation, no autograd
// bookkeeping. Backward methods ADD into their gradient outputs, so the
// gradient buffers simply keep accumulating across timed iterations.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/tensor.h"

namespace lk::bench {

// ResSE-LKA-UNet at training batch size: 4 input channels, 4 classes, five
// encoder levels (spatial size, channels).
inline constexpr int64_t kBatch = 8;
inline constexpr int64_t kClasses = 4;
inline constexpr int64_t kImage = 128;

struct Level {
  int64_t hw, c;
  std::string str() const {
    return std::to_string(hw) + "x" + std::to_string(hw) + "x" + std::to_string(c);
  }
};
inline const std::vector<Level>& all_levels() {
  static const std::vector<Level> v{{128, 32}, {64, 64}, {32, 128}, {16, 256}, {8, 512}};
  return v;
}
// The three levels the memory-bound ops are timed at: top, middle, bottleneck.
inline const std::vector<Level>& key_levels() {
  static const std::vector<Level> v{{128, 32}, {32, 128}, {8, 512}};
  return v;
}

inline Backend& cpu_backend() { return backend(cpu_device()); }

// Selects a kernel variant for a scope and restores the previous one.
class VariantScope {
 public:
  explicit VariantScope(KernelVariant v) : prev_(cpu_backend().variant()) { cpu_backend().set_variant(v); }
  ~VariantScope() { cpu_backend().set_variant(prev_); }
  VariantScope(const VariantScope&) = delete;
  VariantScope& operator=(const VariantScope&) = delete;

 private:
  KernelVariant prev_;
};

// Uniform values in [lo, hi) from a splitmix64 stream: deterministic per seed
// and cheap enough to refill multi-megabyte tensors on every benchmark setup.
inline void fill_uniform(const Tensor& t, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  float* p = t.data<float>();
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  const float scale = (hi - lo) / 16777216.f;  // 2^24
  for (int64_t i = 0, n = t.numel(); i < n; ++i) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    p[i] = lo + static_cast<float>(z >> 40) * scale;
  }
}

inline Tensor rand_tensor(const Shape& s, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  Tensor t = Tensor::empty(s);
  fill_uniform(t, seed, lo, hi);
  return t;
}

inline Tensor labels(const Shape& s, int64_t classes, uint64_t seed) {
  Tensor t = Tensor::empty(s, DType::I32);
  int32_t* p = t.data<int32_t>();
  uint64_t z = seed + 1;
  for (int64_t i = 0, n = t.numel(); i < n; ++i) {
    z ^= z << 13;
    z ^= z >> 7;
    z ^= z << 17;
    p[i] = static_cast<int32_t>(z % static_cast<uint64_t>(classes));
  }
  return t;
}

// max |a - b| / max(max |b|, floor), b the reference.
inline double scaled_error(const Tensor& a, const Tensor& b, double floor = 1e-3) {
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  double diff = 0, mag = floor;
  for (int64_t i = 0, n = b.numel(); i < n; ++i) {
    const double d = std::fabs(static_cast<double>(pa[i]) - pb[i]);
    diff = std::isnan(d) ? INFINITY : std::max(diff, d);
    mag = std::max(mag, std::fabs(static_cast<double>(pb[i])));
  }
  return diff / mag;
}

inline constexpr double kValidationTol = 1e-4;

// Counters. items: elements of the op's main activation per iteration; bytes:
// its compulsory memory traffic per iteration (each input read once, each
// output written once, an accumulated gradient read and written).
inline void set_items(benchmark::State& st, int64_t items) {
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations()) * items);
}
inline void set_bytes(benchmark::State& st, int64_t bytes) {
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * bytes);
}
inline void set_flops(benchmark::State& st, const char* name, double flops) {
  st.counters[name] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

// Registration entry points (one per file).
void register_conv_benchmarks();
void register_memory_benchmarks();

}  // namespace lk::bench
