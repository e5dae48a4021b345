// bench_data: throughput of the data preparation, in cases/s and slices/s.
//   ./build/bench/bench_data
//   ./build/bench/bench_data --benchmark_filter=cache_build
// A few synthetic BraTS-like cases (data/synth.h) are written once into a
// temporary folder (removed at exit); then:
//   load_case            load_brats_case: 5 .nii.gz files read, checked, converted
//   preprocess_case      preprocess_case on a loaded case (crop, clip, z-score, 128x128)
//   load_and_preprocess  both, one case after another on one thread
//   cache_build/threads:T  build_slice_cache of the whole folder with T workers
//                        (1 and all cores): discovery, the pool, the streaming
//                        writer, fsync and rename included
// See bench/README.md for the numbers.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "data/preprocess_pool.h"
#include "data/slice_cache.h"
#include "data/synth.h"

namespace {

namespace fs = std::filesystem;
using namespace lk::data;

constexpr int kCases = 4;
// About a third of a BraTS volume (240x240x155) per case: the synthetic default.
const SynthOptions& synth_options() {
  static const SynthOptions o = [] {
    SynthOptions s;
    s.dims = {160, 160, 96};
    return s;
  }();
  return o;
}

struct Dataset {
  fs::path dir;
  std::vector<BratsCase> cases;
  std::vector<BratsCaseData> loaded;
  int64_t slices = 0;  // over all cases, at 128x128
  Dataset() {
    dir = fs::temp_directory_path() / ("lkaseg_bench_data_" + std::to_string(::getpid()));
    generate_synthetic_dataset((dir / "brats").string(), kCases, 42, synth_options());
    cases = discover_brats_cases((dir / "brats").string()).cases;
    for (const BratsCase& c : cases) {
      loaded.push_back(load_brats_case(c));
      slices += preprocess_case(loaded.back()).slices();
    }
  }
  ~Dataset() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

Dataset& dataset() {
  static Dataset d;
  return d;
}

void set_rates(benchmark::State& st, double cases, double slices) {
  st.counters["cases/s"] = benchmark::Counter(cases, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["slices/s"] = benchmark::Counter(slices, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_load_case(benchmark::State& st) {
  const Dataset& d = dataset();
  size_t i = 0;
  for (auto _ : st) {
    BratsCaseData c = load_brats_case(d.cases[i++ % d.cases.size()]);
    benchmark::DoNotOptimize(c.images[0].data());
  }
  set_rates(st, 1, static_cast<double>(d.slices) / kCases);
}

void bm_preprocess_case(benchmark::State& st) {
  const Dataset& d = dataset();
  size_t i = 0;
  int64_t slices = 0;
  for (auto _ : st) {
    PreprocessedCase p = preprocess_case(d.loaded[i++ % d.loaded.size()]);
    slices += p.slices();
    benchmark::DoNotOptimize(p.images.data());
  }
  st.counters["cases/s"] = benchmark::Counter(static_cast<double>(st.iterations()), benchmark::Counter::kIsRate);
  st.counters["slices/s"] = benchmark::Counter(static_cast<double>(slices), benchmark::Counter::kIsRate);
}

void bm_load_and_preprocess(benchmark::State& st) {
  const Dataset& d = dataset();
  size_t i = 0;
  int64_t slices = 0;
  for (auto _ : st) {
    PreprocessedCase p = preprocess_case(load_brats_case(d.cases[i++ % d.cases.size()]));
    slices += p.slices();
    benchmark::DoNotOptimize(p.images.data());
  }
  st.counters["cases/s"] = benchmark::Counter(static_cast<double>(st.iterations()), benchmark::Counter::kIsRate);
  st.counters["slices/s"] = benchmark::Counter(static_cast<double>(slices), benchmark::Counter::kIsRate);
}

void bm_cache_build(benchmark::State& st, int threads) {
  const Dataset& d = dataset();
  const std::string path = (d.dir / ("bench_" + std::to_string(threads) + ".lkslc")).string();
  CacheBuildOptions b;
  b.threads = threads;
  b.progress = nullptr;
  CacheBuildSummary s;
  for (auto _ : st) s = build_slice_cache(path, (d.dir / "brats").string(), PreprocessOptions{}, b);
  if (s.slices != d.slices) st.SkipWithError("the cache holds another slice count than preprocess_case gives");
  set_rates(st, kCases, static_cast<double>(s.slices));
  st.counters["MB/s"] = benchmark::Counter(static_cast<double>(s.bytes) / 1e6, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["max_held"] = static_cast<double>(s.max_held);
  std::error_code ec;
  fs::remove(path, ec);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const auto& o = synth_options();
  benchmark::AddCustomContext("cases", std::to_string(kCases) + " synthetic, " + std::to_string(o.dims[0]) + "x" +
                                           std::to_string(o.dims[1]) + "x" + std::to_string(o.dims[2]) +
                                           " voxels, .nii.gz level 1, slices 128x128");
  benchmark::AddCustomContext("hardware_concurrency", std::to_string(resolve_threads(0)));
  benchmark::RegisterBenchmark("load_case", bm_load_case)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
  benchmark::RegisterBenchmark("preprocess_case", bm_preprocess_case)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinTime(0.5);
  benchmark::RegisterBenchmark("load_and_preprocess", bm_load_and_preprocess)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinTime(0.5);
  std::vector<int> threads{1};
  if (resolve_threads(0) > 1) threads.push_back(resolve_threads(0));
  for (int t : threads)
    benchmark::RegisterBenchmark(("cache_build/threads:" + std::to_string(t)).c_str(),
                                 [t](benchmark::State& st) { bm_cache_build(st, t); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Iterations(2);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
