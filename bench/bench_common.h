// What the two op benchmark drivers share (bench_cpu_ops.cpp, on the CPU
// backend; bench_gpu_kernels.cpp, on the CUDA backend). Both time the
// benchmark cases of the op table (tests/support/op_table.h), each case
// validated before it is timed, and call the Backend directly, so only the
// op's arithmetic is timed: no shape checks, no output allocation, no autograd
// bookkeeping. Backward methods ADD into their gradient outputs, so the
// gradient buffers simply keep accumulating across timed iterations.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "tests/support/compare.h"
#include "tests/support/model_shapes.h"
#include "tests/support/op_table.h"

namespace lk::bench {

using test::BenchCase;
using test::kBatch;
using test::kBenchValidationTol;
using test::Named;
using test::OpEntry;
using test::scaled_error;

inline Backend& cpu_backend() { return backend(cpu_device()); }

// Per-op kernel variants (Backend::set_variant(op, v)) for the ops one call
// depends on; clears every per-op choice on exit (a Backend cannot drop one).
class OpVariantScope {
 public:
  OpVariantScope(Backend& be, const std::vector<std::string>& ops, KernelVariant v) : be_(be) {
    for (const std::string& op : ops) be_.set_variant(op, v);
  }
  ~OpVariantScope() { be_.clear_op_variants(); }
  OpVariantScope(const OpVariantScope&) = delete;
  OpVariantScope& operator=(const OpVariantScope&) = delete;

 private:
  Backend& be_;
};

// A copy of every tensor on device d, floating tensors as dt (int32 stays).
inline Named copy_to(const Named& b, Device d, DType dt = DType::F32) {
  Named out;
  for (const auto& [name, t] : b) {
    Tensor c = t.dtype() == DType::I32 || t.dtype() == dt ? t.clone() : t.to(dt);
    out[name] = c.device() == d ? c : c.to(d);
  }
  return out;
}

// The largest scaled error over a case's outputs, `got` against `want`.
inline double compare_outs(const BenchCase& c, const Named& got, const Named& want, double floor = 1e-3) {
  double err = 0;
  for (const std::string& o : c.outs) err = std::max(err, scaled_error(got.at(o), want.at(o), floor));
  return err;
}

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
// items, bytes and FLOPs (nominal; valid where padding wastes some) of a case.
inline void set_case_counters(benchmark::State& st, const BenchCase& c) {
  set_items(st, c.items);
  if (c.bytes) set_bytes(st, c.bytes);
  if (c.flops > 0) set_flops(st, "flops", c.flops);
  if (c.flops_valid > 0 && c.flops_valid < 0.99 * c.flops) set_flops(st, "flops_valid", c.flops_valid);
}

}  // namespace lk::bench
