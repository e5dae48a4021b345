// bench_cpu_ops: Google Benchmark suite of the CPU ops at the shapes of the
// paper's ResSE-LKA-UNet (batch 8, 128x128 inputs, 32..512 channels).
//   ./build/bench/bench_cpu_ops --benchmark_filter=conv
// See bench/README.md for the counters and the reference results.
#include <omp.h>

#include <string>

#include "bench/bench_common.h"

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("lkaseg_backend", lk::bench::cpu_backend().describe());
  benchmark::AddCustomContext("omp_max_threads", std::to_string(omp_get_max_threads()));
  lk::bench::register_conv_benchmarks();
  lk::bench::register_memory_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
