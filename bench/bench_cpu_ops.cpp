// bench_cpu_ops: Google Benchmark suite of the CPU backend over the op table's
// benchmark cases (tests/support/op_table.h) at the shapes of the paper's
// ResSE-LKA-UNet (batch 8, 128x128 inputs, 32..512 channels): convolutions at
// every level, memory-bound ops at the top, middle and bottleneck levels, the
// loss head at 128x128x4. Rows <case>/<variant>/<shape>: `fast` (the
// BLAS/OpenMP kernels) and, where the op has them and they finish quickly,
// `plain_loops` (the reference nested loops).
//
// Validation before timing, memoised per row: the row's variant in float32
// against the reference in float64 (the plain loops where the CPU has them,
// else the fast kernels), at batch 2, or for convolutions the largest batch
// whose plain loops stay under 4e8 multiply-adds. A scaled error above 1e-4
// skips the row with an error and the process exits 1.
//   ./build/bench/bench_cpu_ops --benchmark_filter=depthwise_conv2d
// See bench/README.md for the counters and the reference results.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "bench/bench_common.h"

namespace lk::bench {
namespace {

constexpr int64_t kValBatch = 2;
// Plain-loop multiply-adds one validation may spend (about half a second).
constexpr double kValidationMacs = 4e8;

int g_failures = 0;  // rows that failed validation or threw

int64_t validation_batch(const BenchCase& c) {
  if (c.flops <= 0) return std::min(kValBatch, kBatch);
  const double per_image = c.flops / 2 / static_cast<double>(kBatch);
  return std::clamp<int64_t>(static_cast<int64_t>(kValidationMacs / per_image), 1, kBatch);
}

struct Validation {
  double err = 0;
  int64_t batch = 0;
};

// `v` in float32 against the reference (`reference`) in float64.
Validation validate(const BenchCase& c, KernelVariant v, KernelVariant reference) {
  static std::map<std::string, Validation> memo;
  const std::string key = c.key() + "/" + variant_name(v);
  if (auto it = memo.find(key); it != memo.end()) return it->second;
  Validation r;
  r.batch = validation_batch(c);
  const Named host = c.make(r.batch);
  const Named want = copy_to(host, cpu_device(), DType::F64), got = copy_to(host, cpu_device(), DType::F32);
  {
    OpVariantScope s(cpu_backend(), c.variant_ops, reference);
    c.run(cpu_backend(), want);
  }
  {
    OpVariantScope s(cpu_backend(), c.variant_ops, v);
    c.run(cpu_backend(), got);
  }
  r.err = compare_outs(c, got, want);
  return memo[key] = r;
}

void cpu_bench(benchmark::State& st, const BenchCase& c, KernelVariant v, KernelVariant reference) {
  try {
    const Validation val = validate(c, v, reference);
    st.counters["val_err"] = val.err;
    st.counters["val_batch"] = static_cast<double>(val.batch);
    if (!(val.err <= kBenchValidationTol)) {
      char msg[128];
      std::snprintf(msg, sizeof msg, "validation failed: scaled error %.3g > %.0e against float64 %s", val.err,
                    kBenchValidationTol, variant_name(reference));
      ++g_failures;
      st.SkipWithError(msg);
      return;
    }
    const Named b = c.make(kBatch);
    Backend& be = cpu_backend();
    OpVariantScope scope(be, c.variant_ops, v);
    for (auto _ : st) {
      c.run(be, b);
      be.synchronize();
    }
    set_case_counters(st, c);
  } catch (const std::exception& e) {
    ++g_failures;
    st.SkipWithError(e.what());
  }
}

void register_cpu_benchmarks() {
  for (const OpEntry& op : test::op_table()) {
    if (!op.bench) continue;
    const KernelVariant reference = op.plain_loops ? KernelVariant::PlainLoops : KernelVariant::Fast;
    for (const BenchCase& bc : op.bench()) {
      if (!bc.cpu) continue;
      const auto c = std::make_shared<const BenchCase>(bc);
      std::vector<KernelVariant> variants{KernelVariant::Fast};
      // Dense convolutions also as im2col + OpenBLAS, beside oneDNN's Fast.
      if (op.plain_loops && op.name != "depthwise_conv2d") variants.push_back(KernelVariant::Im2colBlas);
      if (c->cpu_plain_loops) variants.push_back(KernelVariant::PlainLoops);
      for (KernelVariant v : variants) {
        const double min_time = v == KernelVariant::PlainLoops ? 0.1 : c->flops > 0 ? 0.3 : 0.2;
        benchmark::RegisterBenchmark((c->name + "/" + variant_name(v) + "/" + c->label).c_str(),
                                     [c, v, reference](benchmark::State& st) { cpu_bench(st, *c, v, reference); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->MinTime(min_time);
      }
    }
  }
}

}  // namespace
}  // namespace lk::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("lkaseg_backend", lk::bench::cpu_backend().describe());
  benchmark::AddCustomContext("omp_max_threads", std::to_string(omp_get_max_threads()));
  lk::bench::register_cpu_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (lk::bench::g_failures > 0) {
    std::fprintf(stderr, "bench_cpu_ops: %d benchmark(s) failed validation or threw\n", lk::bench::g_failures);
    return 1;
  }
  return 0;
}
