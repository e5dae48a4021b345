// bench_gpu_kernels: Google Benchmark suite of the CUDA backend over the op
// table's benchmark cases (tests/support/op_table.h) at the shapes of the
// paper's ResSE-LKA-UNet (batch 8, 128x128, encoder levels 32..512 channels),
// forward and backward, plus an AdamW step over the default network's
// parameters and a whole training step of that network.
//
// Where the backend has two implementations of an op both are timed, in
// adjacent rows .../fast/... (KernelVariant::Fast, our kernel) and
// .../cudnn/... (KernelVariant::Cudnn, the cuDNN path), selected per op through
// Backend::set_variant(op, v): depthwise convolutions (cuDNN grouped
// convolution), training batch norm, relu/sigmoid, the broadcast multiply,
// global average pooling, softmax, and the fused LKA gate (reference: the
// cuDNN batch norm, sigmoid and multiply). Dense and transposed convolutions
// run on cuDNN in both variants (our direct kernel only serves the emulator)
// and get one .../cudnn/... row; the rest is ours alone (.../fast/...).
//
// Validation before timing, memoised per case: two-variant ops run
// both variants on the same full-batch inputs and compare them; ops with one
// implementation are compared against the CPU backend on a batch of 2; the
// training step against the CPU backend at batch 2 (loss and every parameter
// gradient). A scaled error above 1e-4 skips the rows with an error (as does
// an exception), and the process then exits 1. TF32 is off throughout
// (float32 FMA in cuDNN).
//
// Timing: CUDA events around each call, on the legacy default stream, which
// orders with the backend's (blocking) stream; kDepth calls are kept in flight
// so the host's launch work overlaps the GPU's. See bench/README.md.
//
//   ./build/bench/bench_gpu_kernels --benchmark_filter='depthwise_conv2d_5x5_fwd/'
//   ./build/bench/bench_gpu_kernels --benchmark_list_tests   # works without a GPU
#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bench/bench_common.h"
#include "engine/autograd.h"
#include "engine/cuda/backend_cuda.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/device_info.h"
#include "engine/optim.h"
#include "kernels/cuda/runtime_api.h"
#include "model/loss.h"
#include "model/networks.h"

namespace lk::bench {
namespace {

const Device kGpu{DeviceType::CUDA, 0};
Backend& gpu() { return backend(kGpu); }  // registered by cuda::cuda_backend(0) in main

constexpr int64_t kF = sizeof(float);  // bytes per element (float and int32 alike)
constexpr int64_t kValBatch = 2;       // batch of the comparisons against the CPU backend
using test::kClasses;
using test::kImage;
using test::rand_labels;
using test::rand_tensor;

int g_failures = 0;  // rows that failed validation or threw

// ------------------------------------------------------------------ variants

// Outside these scopes the GPU backend has no per-op overrides and the
// global variant Fast.
//
// Per-op selection: OpVariantScope (bench_common.h).
// The global variant, for whole networks: every op with two implementations
// then runs ours (Fast) or cuDNN's (Cudnn).
class GlobalVariantScope {
 public:
  explicit GlobalVariantScope(KernelVariant v) {
    gpu().clear_op_variants();
    gpu().set_variant(v);
  }
  ~GlobalVariantScope() { gpu().set_variant(KernelVariant::Fast); }
  GlobalVariantScope(const GlobalVariantScope&) = delete;
  GlobalVariantScope& operator=(const GlobalVariantScope&) = delete;
};

// ------------------------------------------------------------------ timing

constexpr int kDepth = 4;  // timed calls in flight

// kDepth start/stop event pairs, recorded on the legacy default stream: the
// backend's stream is a blocking stream (cudaStreamCreate), so an event there
// completes after all work queued before it on the backend's stream, and work
// queued after it waits for it. (The Backend does not expose its stream.)
class EventRing {
 public:
  EventRing() {
    for (int i = 0; i < kDepth; ++i) {
      LK_CUDA_CHECK(cudaEventCreate(&start_[i]));
      LK_CUDA_CHECK(cudaEventCreate(&stop_[i]));
    }
  }
  ~EventRing() {
    for (int i = 0; i < kDepth; ++i) {
      cudaEventDestroy(start_[i]);
      cudaEventDestroy(stop_[i]);
    }
  }
  EventRing(const EventRing&) = delete;
  EventRing& operator=(const EventRing&) = delete;

  void begin(int slot) { LK_CUDA_CHECK(cudaEventRecord(start_[slot], cudaStreamLegacy)); }
  void end(int slot) { LK_CUDA_CHECK(cudaEventRecord(stop_[slot], cudaStreamLegacy)); }
  double seconds(int slot) {
    LK_CUDA_CHECK(cudaEventSynchronize(stop_[slot]));
    float ms = 0;
    LK_CUDA_CHECK(cudaEventElapsedTime(&ms, start_[slot], stop_[slot]));
    return static_cast<double>(ms) * 1e-3;
  }

 private:
  cudaEvent_t start_[kDepth]{}, stop_[kDepth]{};
};

// Runs `run` `warmup` times, then times one call per benchmark iteration with
// an event pair, keeping kDepth calls queued: iteration i queues call
// i + kDepth - 1 and then reports call i. The kDepth - 1 calls queued last
// run untimed.
void time_gpu(benchmark::State& st, const std::function<void()>& run, int warmup) {
  Backend& be = gpu();
  for (int i = 0; i < warmup; ++i) run();
  be.synchronize();
  EventRing ring;
  int64_t issued = 0, reported = 0;
  auto issue = [&] {
    const int slot = static_cast<int>(issued++ % kDepth);
    ring.begin(slot);
    run();
    ring.end(slot);
  };
  for (int i = 0; i + 1 < kDepth; ++i) issue();
  for (auto _ : st) {
    issue();
    st.SetIterationTime(ring.seconds(static_cast<int>(reported++ % kDepth)));
  }
  be.synchronize();
}

// ------------------------------------------------------------------ the op table's cases

struct Validation {
  double err = 0;
  int64_t batch = 0;
  std::string what;  // "fast vs cudnn" or "gpu vs cpu"
};

// Ops with our kernel and cuDNN's: both on the same full-batch inputs. The
// rest: the GPU against the CPU backend at batch 2.
Validation validate(const BenchCase& c) {
  static std::map<std::string, Validation> memo;
  if (auto it = memo.find(c.key()); it != memo.end()) return it->second;
  Validation v;
  if (c.gpu_impl == BenchCase::Gpu::OursAndCudnn) {
    v.batch = kBatch;
    v.what = "fast vs cudnn";
    const Named host = c.make(kBatch);
    const Named fast = copy_to(host, kGpu), ref = copy_to(host, kGpu);
    {
      OpVariantScope s(gpu(), c.variant_ops, KernelVariant::Fast);
      c.run(gpu(), fast);
    }
    {
      OpVariantScope s(gpu(), c.variant_ops, KernelVariant::Cudnn);
      c.run(gpu(), ref);
    }
    gpu().synchronize();
    v.err = compare_outs(c, fast, ref);
  } else {
    v.batch = kValBatch;
    v.what = "gpu vs cpu";
    const Named host = c.make(kValBatch);
    const Named cpu = copy_to(host, cpu_device()), dev = copy_to(host, kGpu);
    c.run(cpu_backend(), cpu);
    {
      OpVariantScope s(gpu(), c.variant_ops, KernelVariant::Fast);
      c.run(gpu(), dev);
    }
    gpu().synchronize();
    v.err = compare_outs(c, dev, cpu);
  }
  return memo[c.key()] = v;
}

// Full-batch device buffers of the case being timed; one case at a time (the
// rows of a case are adjacent and Google Benchmark re-enters each row several
// times), so device memory holds one case's tensors. Released by
// release_device_tensors() before exit, while the backend still exists.
std::string g_timing_key;
Named g_timing_bufs;

const Named& timing_bufs(const BenchCase& c) {
  if (g_timing_key != c.key()) {
    g_timing_bufs.clear();
    g_timing_key.clear();
    g_timing_bufs = copy_to(c.make(kBatch), kGpu);
    g_timing_key = c.key();
  }
  return g_timing_bufs;
}

void fail(benchmark::State& st, const std::exception& e) {
  ++g_failures;
  st.SkipWithError(e.what());
}

bool check_validation(benchmark::State& st, const Validation& v) {
  st.counters["val_err"] = v.err;
  st.counters["val_batch"] = static_cast<double>(v.batch);
  if (v.err <= kBenchValidationTol) return true;
  char msg[160];
  std::snprintf(msg, sizeof msg, "validation failed: %s scaled error %.3g > %.0e (batch %lld)", v.what.c_str(), v.err,
                kBenchValidationTol, static_cast<long long>(v.batch));
  ++g_failures;
  st.SkipWithError(msg);
  return false;
}

void case_bench(benchmark::State& st, const BenchCase& c, KernelVariant variant) {
  try {
    if (!check_validation(st, validate(c))) return;
    const Named& b = timing_bufs(c);
    OpVariantScope scope(gpu(), c.variant_ops, variant);
    Backend& be = gpu();
    time_gpu(st, [&] { c.run(be, b); }, 2);
    set_case_counters(st, c);
  } catch (const std::exception& e) {
    fail(st, e);
  }
}

// Rows <case>/<fast|cudnn>/<shape>: both where the backend has both; dense
// and transposed convolutions run on cuDNN in either variant: one cudnn row.
void register_op_table() {
  for (const OpEntry& op : test::op_table()) {
    if (!op.bench) continue;
    for (const BenchCase& bc : op.bench()) {
      if (!bc.gpu) continue;
      const auto c = std::make_shared<const BenchCase>(bc);
      std::vector<KernelVariant> variants{KernelVariant::Fast};
      if (c->gpu_impl == BenchCase::Gpu::OursAndCudnn) variants.push_back(KernelVariant::Cudnn);
      for (KernelVariant v : variants) {
        const char* tag = c->gpu_impl == BenchCase::Gpu::CudnnOnly ? "cudnn" : variant_name(v);
        benchmark::RegisterBenchmark((c->name + "/" + tag + "/" + c->label).c_str(),
                                     [c, v](benchmark::State& st) { case_bench(st, *c, v); })
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
}

// ------------------------------------------------------------------ AdamW

// The parameter shapes of the default ResSE-LKA-UNet (built once, on the host).
const std::vector<Shape>& default_param_shapes() {
  static const std::vector<Shape> shapes = [] {
    std::vector<Shape> s;
    const model::SegNet net{model::NetConfig{}};
    for (const Tensor& p : net.parameters()) s.push_back(p.shape());
    return s;
  }();
  return shapes;
}

// Parameters with gradients and the two moments, random, on `d`.
struct AdamWState {
  std::vector<Tensor> params, m, v;
  int64_t numel = 0;
};
AdamWState adamw_state(Device d) {
  AdamWState s;
  uint64_t seed = 100;
  for (const Shape& sh : default_param_shapes()) {
    Tensor p = rand_tensor(sh, seed++, -0.1f, 0.1f).to(d);
    const Tensor g = grad_buffer(p);
    g.copy_from(rand_tensor(sh, seed++, -1e-2f, 1e-2f));
    s.params.push_back(p);
    s.m.push_back(rand_tensor(sh, seed++, -1e-3f, 1e-3f).to(d));
    s.v.push_back(rand_tensor(sh, seed++, 0.f, 1e-4f).to(d));
    s.numel += p.numel();
  }
  return s;
}

constexpr int64_t kAdamWStep = 10;

void adamw_bench(benchmark::State& st) {
  try {
    const AdamWParams a{};
    static const Validation val = [&] {
      Validation v{0, 0, "gpu vs cpu"};
      AdamWState c = adamw_state(cpu_device()), g = adamw_state(kGpu);
      cpu_backend().adamw_step(a, adamw_state(cpu_device(), a.lr, kAdamWStep - 1), c.params, c.m, c.v, Tensor());
      gpu().adamw_step(a, adamw_state(kGpu, a.lr, kAdamWStep - 1), g.params, g.m, g.v, Tensor());
      gpu().synchronize();
      for (size_t i = 0; i < c.params.size(); ++i)
        v.err = std::max({v.err, scaled_error(g.params[i], c.params[i]), scaled_error(g.m[i], c.m[i]),
                                  scaled_error(g.v[i], c.v[i])});
      return v;
    }();
    if (!check_validation(st, val)) return;
    st.counters["val_batch"] = 0;  // all parameters, no batch
    AdamWState g = adamw_state(kGpu);
    Backend& be = gpu();
    const Tensor state = adamw_state(kGpu, a.lr, kAdamWStep - 1);
    time_gpu(st, [&] { be.adamw_step(a, state, g.params, g.m, g.v, Tensor()); }, 2);
    set_items(st, g.numel);
    set_bytes(st, 7 * g.numel * kF);  // read p, g, m, v; write p, m, v
    st.counters["params"] = static_cast<double>(g.numel);
    st.counters["tensors"] = static_cast<double>(g.params.size());
  } catch (const std::exception& e) {
    fail(st, e);
  }
}

// ------------------------------------------------------------------ training step

// One training step of the default ResSE-LKA-UNet as lkaseg's trainer runs
// it: forward, deep-supervision loss, zero_grad, backward, AdamW step.
struct TrainSetup {
  model::SegNet net{model::NetConfig{}};
  std::unique_ptr<AdamW> opt;
  Tensor x, y;
  explicit TrainSetup(int64_t n, Device d) {
    net.to_device(d);
    opt = std::make_unique<AdamW>(net.parameters(), AdamW::Options{.lr = 1e-4});
    x = rand_tensor({n, 4, kImage, kImage}, 7).to(d);
    y = rand_labels({n, kImage, kImage}, kClasses, 8).to(d);
  }
  Tensor forward_backward() {
    const model::LossTerms t = model::deep_supervision_loss(net.forward(x), y);
    opt->zero_grad();
    backward(t.total);
    return t.total;
  }
  void step() {
    forward_backward();
    opt->step();
  }
};

// Loss and every parameter gradient of one forward+backward at batch 2 on the
// GPU (variant v) against the CPU backend, from the same initial weights.
// Gradients are scaled with a floor of 1e-2 of the largest gradient (biases
// in front of a training-mode batch norm have a true gradient of 0).
Validation validate_train_step(KernelVariant v) {
  static std::map<KernelVariant, Validation> memo;
  if (auto it = memo.find(v); it != memo.end()) return it->second;
  Validation val{0, kValBatch, "gpu vs cpu (loss, gradients)"};
  TrainSetup c(kValBatch, cpu_device()), g(kValBatch, kGpu);
  const double lc = c.forward_backward().item();
  double lg = 0;
  {
    GlobalVariantScope s(v);
    lg = g.forward_backward().item();
  }
  val.err = std::abs(lg - lc) / std::max(std::abs(lc), 1e-3);
  const auto pc = c.net.parameters(), pg = g.net.parameters();
  double global = 0;
  for (const Tensor& p : pc)
    for (double x : p.grad().to_vector()) global = std::max(global, std::abs(x));
  for (size_t i = 0; i < pc.size(); ++i) val.err = std::max(val.err, scaled_error(pg[i].grad(), pc[i].grad(), 1e-2 * global));
  return memo[v] = val;
}

std::unique_ptr<TrainSetup> g_train;

void train_step_bench(benchmark::State& st, KernelVariant v) {
  try {
    if (!check_validation(st, validate_train_step(v))) return;
    if (!g_train) {
      g_timing_bufs.clear();
      g_timing_key.clear();
      g_train = std::make_unique<TrainSetup>(kBatch, kGpu);  // shared by both rows
    }
    GlobalVariantScope scope(v);
    time_gpu(st, [&] { g_train->step(); }, 3);
    set_items(st, kBatch);  // images per second
    st.counters["params"] = static_cast<double>(g_train->net.parameter_count());
  } catch (const std::exception& e) {
    fail(st, e);
  }
}

}  // namespace

void register_gpu_benchmarks() {
  register_op_table();
  benchmark::RegisterBenchmark("adamw_step/fast/resse_lka_unet", adamw_bench)
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
  for (KernelVariant v : {KernelVariant::Fast, KernelVariant::Cudnn})
    benchmark::RegisterBenchmark(
        (std::string("resse_lka_unet_train_step/") + variant_name(v) + "/" + std::to_string(kBatch) + "x4x" +
         std::to_string(kImage) + "x" + std::to_string(kImage))
            .c_str(),
        [v](benchmark::State& st) { train_step_bench(st, v); })
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond)
        ->MinTime(1.0);
}

int failures() { return g_failures; }

// Device tensors must go before the backend (a function-local static that
// owns their allocator) is destroyed at exit.
void release_device_tensors() {
  g_train.reset();
  g_timing_bufs.clear();
  g_timing_key.clear();
}

}  // namespace lk::bench

namespace {

// --benchmark_list_tests[=true|1|yes|...]: Google Benchmark has no accessor
// for its flags, so this is read from argv before Initialize consumes it.
bool list_tests_requested(int argc, char** argv) {
  constexpr std::string_view flag = "--benchmark_list_tests";
  bool on = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == flag) on = true;
    else if (a.substr(0, flag.size() + 1) == std::string(flag) + "=") {
      const std::string_view v = a.substr(flag.size() + 1);
      on = !(v == "false" || v == "0" || v == "no" || v == "off" || v == "f" || v == "n");
    }
  }
  return on;
}

}  // namespace

int main(int argc, char** argv) {
  const bool list_only = list_tests_requested(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  lk::bench::register_gpu_benchmarks();  // touches no device
  if (!list_only) {
    if (lk::cuda::device_count() == 0) {
      std::printf("no CUDA device: %s; bench_gpu_kernels has nothing to time\n", lk::cuda::why_none().c_str());
      benchmark::Shutdown();
      return 0;
    }
    try {
      lk::cuda::cuda_backend(0);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_gpu_kernels: %s\n", e.what());
      return 1;
    }
    lk::cuda::set_tf32(false);
    benchmark::AddCustomContext("lkaseg_backend", lk::bench::gpu().describe());
    benchmark::AddCustomContext("lkaseg_cpu_reference", lk::bench::cpu_backend().describe());
    benchmark::AddCustomContext("lkaseg_tf32", "off");
  }
  benchmark::RunSpecifiedBenchmarks();
  lk::bench::release_device_tensors();
  benchmark::Shutdown();
  if (const int bad = lk::bench::failures()) {
    std::fprintf(stderr, "bench_gpu_kernels: %d benchmark(s) failed validation or threw\n", bad);
    return 1;
  }
  return 0;
}
