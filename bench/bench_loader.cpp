// Data loader benchmarks (data/loader.h): batches of 8 slices of 4 x 128 x
// 128 from a memory-mapped slice cache (160 slices, page cache warm), one
// next() per iteration.
//   loader/augment_cpu_slice       augment_cpu on one slice: the per-core cost
//   loader/cpu/<aug>/workers:W     the CPU device, augmentation in W workers
//                                  (aug: cpu) or none (plain gather)
//   loader/overlap/compute_ms:C    a consumer that "computes" C ms per batch
//                                  (sleeps): the wait counter shows how much
//                                  of the batch assembly the prefetching hides
//   loader/gpu/<aug>               on cuda:0 (GPU builds with a device):
//                                  augmentation in the workers then copies,
//                                  or the raw slices copied and one kernel
// Counters: slices/s (items_per_second), wait_ms (mean time next() blocked),
// produce_ms (mean worker time per batch).
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <thread>

#include "data/loader.h"
#include "tests/support/loader_fixture.h"
#if defined(LKASEG_HAVE_CUDA)
#include "engine/cuda/backend_cuda.h"
#include "engine/cuda/device_info.h"
#endif

namespace {

using namespace lk;
using namespace lk::data;

constexpr int64_t kBatch = 8;

const test::LoaderFixture& fixture() {
  static const auto f = std::make_unique<test::LoaderFixture>("bench_loader", 5, 32, 128);
  return *f;
}

void run_loader(benchmark::State& st, LoaderOptions o, double compute_ms = 0) {
  const test::LoaderFixture& f = fixture();
  o.batch_size = kBatch;
  Loader L(f.cache, f.all_slices(), o);
  L.next();  // warm: threads started, first batches queued
  L.reset_stats();
  for (auto _ : st) {
    Batch b = L.next();
    benchmark::DoNotOptimize(b.images.raw());
    if (compute_ms > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(compute_ms));
  }
  backend(o.device).synchronize();
  const LoaderStats s = L.stats();
  st.SetItemsProcessed(st.iterations() * kBatch);
  st.counters["wait_ms"] = s.mean_wait_ms();
  st.counters["produce_ms"] = s.batches ? 1e3 * s.produce_seconds / static_cast<double>(s.batches) : 0.0;
  st.counters["workers"] = L.workers();
}

void BM_augment_cpu_slice(benchmark::State& st) {
  const test::LoaderFixture& f = fixture();
  const int64_t S = f.cache.side();
  std::vector<int32_t> lab(f.cache.labels(0), f.cache.labels(0) + S * S), out_lab(kAugOut * kAugOut);
  std::vector<float> out(4 * kAugOut * kAugOut);
  int64_t i = 0;
  for (auto _ : st) {
    // Every transform on, so the cost is the worst case (p = 1).
    AugmentDraw d = draw_augmentation(1, 0, i++);
    d.noise = d.brightness = d.gamma = d.scale = d.rotate = true;
    set_warp(d);
    augment_cpu(d, f.cache.images(0), lab.data(), S, out.data(), out_lab.data());
    benchmark::DoNotOptimize(out.data());
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_augment_cpu_slice)->Name("loader/augment_cpu_slice")->Unit(benchmark::kMicrosecond);

void register_all() {
  for (int w : {1, 2, 4}) {
    LoaderOptions o;
    o.workers = w;
    o.prefetch = std::max(3, w + 1);
    o.augment_on = AugmentOn::Cpu;
    benchmark::RegisterBenchmark(("loader/cpu/cpu_aug/workers:" + std::to_string(w)).c_str(),
                                 [o](benchmark::State& st) { run_loader(st, o); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  {
    LoaderOptions o;
    o.workers = 1;
    o.augment = false;
    benchmark::RegisterBenchmark("loader/cpu/no_aug/workers:1", [o](benchmark::State& st) { run_loader(st, o); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  for (double c : {0.0, 5.0, 20.0}) {
    LoaderOptions o;
    o.workers = 1;
    o.augment_on = AugmentOn::Cpu;
    benchmark::RegisterBenchmark(("loader/overlap/compute_ms:" + std::to_string(static_cast<int>(c))).c_str(),
                                 [o, c](benchmark::State& st) { run_loader(st, o, c); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Iterations(40);
  }
#if defined(LKASEG_HAVE_CUDA)
  if (cuda::device_count() > 0) {
    cuda::cuda_backend(0);
    for (AugmentOn on : {AugmentOn::Cpu, AugmentOn::Device}) {
      LoaderOptions o;
      o.device = {DeviceType::CUDA, 0};
      o.augment_on = on;
      o.workers = on == AugmentOn::Cpu ? 4 : 1;
      o.prefetch = 5;
      benchmark::RegisterBenchmark((std::string("loader/gpu/") + augment_on_name(on) + "_aug").c_str(),
                                   [o](benchmark::State& st) { run_loader(st, o); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
#endif
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
