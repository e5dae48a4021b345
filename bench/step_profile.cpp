// step_profile: what one training step of a network costs on a backend, as
// one JSON line on stdout (bench/README.md, "Step profile").
//
//   step_profile --backend cpu|cuda|emu --net resse_lka_unet|unet|attention_unet
//                --widths 4,8,16,32 --batch 2 --size 32 --steps 5 --warmup 3
//                [--threads N] [--graph on|off] [--precision fp32|bf16|fp16] [--fuse on|off] [--tf32]
//                [--inference] [--ops] [--trace FILE]
//
// Each step is the trainer's: forward, the deep-supervision loss, zero_grad +
// backward, AdamW, on a fixed random batch already on the device. Counted per
// step after the warm-up steps (means over the timed steps):
//   launches_per_step        kernel launches (+ memsets: stream work besides copies)
//   host_syncs_per_step      calls that make the host wait for the device
//   allocations_per_step     driver allocations (cudaMalloc*, or host tensor
//                            buffers on the CPU backend)
//   op_bytes_per_step        for every backend op, the bytes of the tensors it
//                            reads and writes (engine/profiler.h), summed
//   step_seconds(_min)       median (minimum) over the timed steps, wall clock
//                            to the end of the step's device work
//   step_cpu_seconds         median process CPU time (all host threads) of a
//                            step: with --threads 1 on a shared machine, the
//                            work itself, steadier than the wall clock
// and per phase (forward, loss, backward, optimizer; with --graph on the
// step is one phase, "step": engine/step_graph.h runs the first step eagerly,
// captures the second and replays it after, so count after --warmup 2 or
// more; graph_launches_per_step counts cudaGraphLaunch, and the per-op table
// and trace see the ops of the eager and captured steps only; --precision
// fp16's loss scaler decides on the device, so fp16 replays too). On `emu` (the CUDA
// backend under the SIMT emulator, this program's twin step_profile_emu,
// which `--backend emu` runs) every runtime call is counted at the runtime-API
// boundary (simt/api_counts.h), so the counts are exact; on `cuda` launches
// are those of our kernels (LK_LAUNCH; cuDNN's are not seen) and host syncs
// are not counted (null). --inference instead times the forward pass (eval
// mode, no gradients) over one 155-slice case in batches of --batch.
// --ops prints a per-op table (time, share, calls, launches, MB per step) on
// stderr; --trace FILE writes a Chrome/Perfetto trace (phases, ops and our
// kernels; host clock on the CPU, CUDA events on the GPU).
#include <omp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/loss_scaler.h"
#include "engine/optim.h"
#include "engine/profiler.h"
#include "engine/step_graph.h"
#include "model/loss.h"
#include "model/networks.h"
#if defined(STEP_PROFILE_EMU) || defined(LKASEG_HAVE_CUDA)
#define STEP_PROFILE_GPU 1
#include "engine/cuda/backend_cuda.h"
#include "engine/cuda/caching_allocator.h"
#include "engine/cuda/cuda_check.h"
#include "kernels/cuda/launch_observer.h"
#include "kernels/cuda/runtime_api.h"
#else
#define STEP_PROFILE_GPU 0
#endif

namespace lk::bench {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

#if defined(STEP_PROFILE_EMU)
constexpr const char* kGpuBackend = "emu";
#else
constexpr const char* kGpuBackend = "cuda";
#endif

struct Args {
  std::string backend = "cpu", net = "resse_lka_unet", widths = "32,64,128,256,512", graph = "off",
              precision = "fp32", fuse = "on", trace;
  int64_t batch = 8, size = 128, steps = 5, warmup = 3;
  int threads = 0;
  bool inference = false, ops = false, tf32 = false;
};

std::vector<int64_t> parse_widths(const std::string& s) {
  std::vector<int64_t> w;
  size_t at = 0;
  while (at <= s.size()) {
    const size_t comma = std::min(s.find(',', at), s.size());
    const std::string part = s.substr(at, comma - at);
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != part.size() || part.empty() || v < 1)
      throw std::invalid_argument("--widths: '" + s + "' is not a list of positive integers like 4,8,16,32");
    w.push_back(v);
    at = comma + 1;
  }
  return w;
}

// ------------------------------------------------------------------ counters

// Everything counted, as running totals; a step's count is a difference.
struct Counts {
  double launches = 0, syncs = 0, allocations = 0, copies = 0, op_calls = 0, op_bytes = 0, graph_launches = 0;
};

Counts operator-(const Counts& a, const Counts& b) {
  return {a.launches - b.launches, a.syncs - b.syncs,       a.allocations - b.allocations,
          a.copies - b.copies,     a.op_calls - b.op_calls, a.op_bytes - b.op_bytes,
          a.graph_launches - b.graph_launches};
}
Counts operator+(const Counts& a, const Counts& b) {
  return {a.launches + b.launches, a.syncs + b.syncs,       a.allocations + b.allocations,
          a.copies + b.copies,     a.op_calls + b.op_calls, a.op_bytes + b.op_bytes,
          a.graph_launches + b.graph_launches};
}

#if STEP_PROFILE_GPU
// Counts our kernel launches and, when tracing, gives each one a slice.
class KernelObserver final : public cuda::LaunchObserver {
 public:
  uint64_t launches = 0;
  Profiler* profiler = nullptr;  // set: one slice per kernel
  void before(const char*, cudaStream_t) override {
    if (profiler) begin_ = profiler->timeline()->mark();
  }
  void after(const char* kernel, cudaStream_t, cudaError_t) override {
    ++launches;
    if (profiler) profiler->add_slice({kernel, "kernel", begin_, profiler->timeline()->mark()});
  }

 private:
  int64_t begin_ = -1;
};

// CUDA events on the backend's stream.
class EventTimeline final : public Timeline {
 public:
  explicit EventTimeline(cudaStream_t s) : stream_(s) {}
  ~EventTimeline() override {
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
  }
  int64_t mark() override {
    cudaEvent_t e = nullptr;
    LK_CUDA_CHECK(cudaEventCreate(&e));
    events_.push_back(e);
    LK_CUDA_CHECK(cudaEventRecord(e, stream_));
    return static_cast<int64_t>(events_.size()) - 1;
  }
  std::vector<double> resolve() override {
    std::vector<double> s;
    if (events_.empty()) return s;
    LK_CUDA_CHECK(cudaEventSynchronize(events_.back()));
    for (cudaEvent_t e : events_) {
      float ms = 0;
      LK_CUDA_CHECK(cudaEventElapsedTime(&ms, events_.front(), e));
      s.push_back(ms / 1e3);
    }
    return s;
  }

 private:
  cudaStream_t stream_;
  std::vector<cudaEvent_t> events_;
};
#endif

class Counter {
 public:
  explicit Counter(Device dev) : dev_(dev) {}
#if STEP_PROFILE_GPU
  KernelObserver observer;
#endif
  Profiler* prof = nullptr;
  const StepGraph* graph = nullptr;
  // Kernel launches (and memsets) so far.
  uint64_t launches() const { return static_cast<uint64_t>(now().launches); }
  Counts now() const {
    Counts c;
    if (prof) {
      c.op_calls = static_cast<double>(prof->calls());
      c.op_bytes = static_cast<double>(prof->bytes());
    }
    if (dev_.type == DeviceType::CPU) {
      c.allocations = static_cast<double>(cpu_memory_stats().allocations);
      return c;
    }
#if defined(STEP_PROFILE_EMU)
    const lk::simt::ApiCounts a = lk::simt::api_counts();
    c.launches = static_cast<double>(a.launches + a.memsets);
    c.syncs = static_cast<double>(a.syncs);
    c.allocations = static_cast<double>(a.mallocs);
    c.copies = static_cast<double>(a.copies);
    c.graph_launches = static_cast<double>(a.graph_launches);
#elif STEP_PROFILE_GPU
    if (graph) c.graph_launches = static_cast<double>(graph->launches());
    c.launches = static_cast<double>(observer.launches);
    if (auto* ca = dynamic_cast<cuda::CachingAllocator*>(&backend(dev_).allocator()))
      c.allocations = static_cast<double>(ca->stats().driver_allocs);
#endif
    return c;
  }
  // Whether host_syncs and copies are counted on this backend.
  bool syncs_counted() const {
#if defined(STEP_PROFILE_EMU)
    return true;
#else
    return dev_.type == DeviceType::CPU;
#endif
  }

 private:
  Device dev_;
};

// ------------------------------------------------------------------ the run

// CPU time of the whole process (all threads), seconds.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

json counts_json(const Counts& c, double per, bool syncs_counted) {
  json j = {{"launches", c.launches / per},
            {"allocations", c.allocations / per},
            {"op_calls", c.op_calls / per},
            {"op_bytes", c.op_bytes / per},
            {"graph_launches", c.graph_launches / per}};
  j["host_syncs"] = syncs_counted ? json(c.syncs / per) : json(nullptr);
  return j;
}

Tensor random_images(int64_t n, int64_t size, uint64_t seed) {
  Tensor x = Tensor::empty({n, 4, size, size});
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = d(rng);
  return x;
}

Tensor random_labels(int64_t n, int64_t size, uint64_t seed) {
  Tensor y = Tensor::empty({n, size, size}, DType::I32);
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < y.numel(); ++i) y.data<int32_t>()[i] = static_cast<int32_t>(rng() % 4);
  return y;
}

// Peak bytes held by tensors since the start (weights, optimiser state,
// activations, workspaces): the CUDA caching allocator's, or the CPU's.
json peak_memory_bytes(Device dev) {
#if STEP_PROFILE_GPU
  if (dev.type == DeviceType::CUDA) {
    if (auto* ca = dynamic_cast<cuda::CachingAllocator*>(&backend(dev).allocator()))
      return static_cast<double>(ca->stats().peak_in_use);
    return nullptr;
  }
#endif
  return static_cast<double>(cpu_memory_stats().peak);
}

int run(const Args& a) {
  const DType precision = parse_precision(a.precision);
  if (precision != DType::F32 && a.backend == "cpu")
    throw std::invalid_argument("--precision " + a.precision + ": the CPU backend computes in float32 only; use --backend " +
                                std::string(kGpuBackend));
  if (a.graph != "on" && a.graph != "off") throw std::invalid_argument("--graph must be on or off");
  if (a.fuse != "on" && a.fuse != "off") throw std::invalid_argument("--fuse must be on or off");
  BatchNorm2d::set_fused_relu(a.fuse == "on");
  if (a.steps < 1 || a.warmup < 0 || a.batch < 1 || a.size < 1) throw std::invalid_argument("bad --steps/--warmup/--batch/--size");
  if (a.threads > 0) omp_set_num_threads(a.threads);
  const bool graph_wanted = a.graph == "on";

  Device dev = cpu_device();
  if (a.backend == kGpuBackend) {
#if STEP_PROFILE_GPU
    cuda::cuda_backend(0);
    cuda::set_tf32(a.tf32);
    dev = {DeviceType::CUDA, 0};
#endif
  } else if (a.backend != "cpu") {
    throw std::invalid_argument("--backend " + a.backend + ": this build has cpu" +
                                (STEP_PROFILE_GPU ? std::string(" and ") + kGpuBackend : std::string()));
  }

  model::NetConfig nc;
  nc.arch = model::parse_arch(a.net);
  nc.widths = parse_widths(a.widths);
  model::SegNet net(nc);
  net.set_precision(precision);
  net.to_device(dev);

  std::unique_ptr<Timeline> timeline;
#if STEP_PROFILE_GPU
  if (dev.type == DeviceType::CUDA) timeline = std::make_unique<EventTimeline>(cuda::compute_stream(0));
#endif
  if (!timeline) timeline = make_host_timeline();
  const bool per_op = a.ops || !a.trace.empty();
  Counter counter(dev);
  Profiler::Options po;
  po.timeline = timeline.get();
  po.mark_ops = per_op && !graph_wanted;  // no timeline marks inside a capture
  if (dev.type == DeviceType::CUDA) po.launches = [&counter] { return counter.launches(); };
  Profiler prof(dev, po);
  counter.prof = &prof;
#if STEP_PROFILE_GPU
  if (dev.type == DeviceType::CUDA) {
    if (!a.trace.empty() && !graph_wanted) counter.observer.profiler = &prof;
    cuda::set_launch_observer(&counter.observer);
  }
#endif
  json out = {{"backend", a.backend},
              {"device", backend(dev).describe()},
              {"net", a.net},
              {"widths", nc.widths},
              {"batch", a.batch},
              {"size", a.size},
              {"threads", omp_get_max_threads()},
              {"precision", a.precision},
              {"fuse", a.fuse},
              {"tf32", a.tf32},
              {"counts_exact", a.backend != "cuda"},
              {"steps", a.steps},
              {"warmup", a.warmup}};

  // With the graph, a step is one graph launch: no phases inside it.
  const std::vector<std::string> phase_names =
      a.inference ? std::vector<std::string>{"forward"}
      : graph_wanted ? std::vector<std::string>{"step"}
                     : std::vector<std::string>{"forward", "loss", "backward", "optimizer"};
  StepGraph graph(graph_wanted && !a.inference,
                  [](const std::string& m) { std::fprintf(stderr, "step_profile: %s\n", m.c_str()); });
  counter.graph = &graph;
  std::vector<double> seconds, cpu_secs;
  std::vector<std::vector<int64_t>> phase_marks;  // per timed step: a mark at each phase boundary
  std::vector<Counts> phase_counts(phase_names.size());
  Counts step_total, first_step;
  double allocations_after_first = 0;
  std::vector<double> allocations_by_step;  // every step, warm-up included

  if (a.inference) {
    // One 155-slice case, --batch slices at a time: upload, forward; the
    // outputs stay on the device.
    constexpr int64_t kSlices = 155;
    const Tensor host = random_images(kSlices, a.size, 1);
    net.train(false);
    NoGradGuard ng;
    for (int64_t s = 0; s < a.warmup + a.steps; ++s) {
      if (s == a.warmup) prof.reset();
      const bool timed = s >= a.warmup;
      const Counts c0 = counter.now();
      std::vector<int64_t> marks{timeline->mark()};
      prof.begin_phase("forward");
      const auto t0 = Clock::now();
      const double c0s = cpu_seconds();
      for (int64_t b0 = 0; b0 < kSlices; b0 += a.batch) {
        const int64_t m = std::min(a.batch, kSlices - b0);
        Tensor x = Tensor::empty({m, 4, a.size, a.size});
        std::copy(host.data<float>() + b0 * 4 * a.size * a.size, host.data<float>() + (b0 + m) * 4 * a.size * a.size,
                  x.data<float>());
        net.forward(x.to(dev));
      }
      prof.end_phase();
      marks.push_back(timeline->mark());
      const Counts c1 = counter.now();
      backend(dev).synchronize();
      const double t = std::chrono::duration<double>(Clock::now() - t0).count();
      if (timed) {
        seconds.push_back(t);
        cpu_secs.push_back(cpu_seconds() - c0s);
        phase_marks.push_back(marks);
        step_total = step_total + (c1 - c0);
        phase_counts[0] = phase_counts[0] + (c1 - c0);
      }
    }
    out["mode"] = "inference";
    out["case_slices"] = kSlices;
  } else {
    const Tensor images = random_images(a.batch, a.size, 1).to(dev);
    const Tensor labels = random_labels(a.batch, a.size, 2).to(dev);
    AdamW opt(net.parameters(), AdamW::Options{});
    LossScaler scaler(precision == DType::F16, dev);  // fp16: decides on the device (as the trainer's)
    opt.skip_if(scaler.found_inf());
    const model::DeepSupervisionLoss loss_fn;  // class weights uploaded once
    net.train(true);
    for (int64_t s = 0; s < a.warmup + a.steps; ++s) {
      if (s == a.warmup) prof.reset();
      const bool timed = s >= a.warmup;
      std::vector<Counts> at{counter.now()};
      std::vector<int64_t> marks{timeline->mark()};
      const auto t0 = Clock::now();
      const double c0s = cpu_seconds();
      const auto phase = [&](const char* name, auto&& f) {
        prof.begin_phase(name);
        f();
        prof.end_phase();
        marks.push_back(timeline->mark());
        at.push_back(counter.now());
      };
      if (graph_wanted) {
        // engine/step_graph.h: eager on the static inputs, then captured, then replayed.
        phase("step", [&] {
          graph.run(images, labels, net, opt, [&](const Tensor& x, const Tensor& y) {
            const model::LossTerms t = loss_fn(net.forward(x), y);
            opt.zero_grad();
            scaler.backward(t.total);
            scaler.unscale(net.parameters());
            opt.step();
            return t.total.detach();
          });
        });
      } else {
        std::vector<Tensor> outs;
        model::LossTerms terms;
        phase("forward", [&] { outs = net.forward(images); });
        phase("loss", [&] { terms = loss_fn(outs, labels); });
        phase("backward", [&] {
          opt.zero_grad();
          scaler.backward(terms.total);
        });
        phase("optimizer", [&] {  // fp16: the unscale and the skip decision on the device, no host read
          scaler.unscale(net.parameters());
          opt.step();
        });
      }
      backend(dev).synchronize();  // the profiler's own wait: after the counts
      const double t = std::chrono::duration<double>(Clock::now() - t0).count();
      const Counts d = at.back() - at.front();
      allocations_by_step.push_back(d.allocations);
      if (s == 0) first_step = d;
      else allocations_after_first += d.allocations;
      if (timed) {
        seconds.push_back(t);
        cpu_secs.push_back(cpu_seconds() - c0s);
        phase_marks.push_back(marks);
        step_total = step_total + d;
        for (size_t p = 0; p < phase_names.size(); ++p) phase_counts[p] = phase_counts[p] + (at[p + 1] - at[p]);
      }
    }
    out["mode"] = "train";
    out["skipped_steps"] = scaler.skipped();  // fp16: optimiser steps skipped on a loss-scale overflow
    out["first_step_allocations"] = first_step.allocations;
    out["allocations_after_first_step"] = allocations_after_first;
    out["allocations_by_step"] = allocations_by_step;
  }
  backend(dev).synchronize();
  prof.finish();
  const std::vector<double> times = timeline->resolve();

  const double n = static_cast<double>(a.steps);
  const bool sc = counter.syncs_counted();
  out["launches_per_step"] = step_total.launches / n;
  out["host_syncs_per_step"] = sc ? json(step_total.syncs / n) : json(nullptr);
  out["graph_launches_per_step"] = step_total.graph_launches / n;
  out["graph"] = graph.status();
  out["allocations_per_step"] = step_total.allocations / n;
  out["copies_per_step"] = sc ? json(step_total.copies / n) : json(nullptr);
  out["op_calls_per_step"] = step_total.op_calls / n;
  out["op_bytes_per_step"] = step_total.op_bytes / n;
  out["step_seconds"] = median(seconds);
  out["step_seconds_min"] = *std::min_element(seconds.begin(), seconds.end());
  out["step_cpu_seconds"] = median(cpu_secs);
  json phases = json::object();
  for (size_t p = 0; p < phase_names.size(); ++p) {
    std::vector<double> ps;
    for (const auto& m : phase_marks) ps.push_back(times.at(m[p + 1]) - times.at(m[p]));
    json j = counts_json(phase_counts[p], n, sc);
    j["seconds"] = median(ps);
    phases[phase_names[p]] = j;
  }
  out["phases"] = phases;
  out["peak_memory_bytes"] = peak_memory_bytes(dev);
  std::printf("%s\n", out.dump().c_str());
  std::fflush(stdout);

  if (a.ops) std::fprintf(stderr, "%s", prof.table(n).c_str());
  if (!a.trace.empty()) {
    std::ofstream f(a.trace);
    f << prof.trace_json() << "\n";
    if (!f) throw std::runtime_error(a.trace + ": cannot write the trace");
  }
#if STEP_PROFILE_GPU
  cuda::set_launch_observer(nullptr);
#endif
  return 0;
}

}  // namespace
}  // namespace lk::bench

int main(int argc, char** argv) {
  lk::bench::Args a;
  CLI::App app{"step_profile: counts and times training steps (one JSON line on stdout)"};
  app.add_option("--backend", a.backend, "cpu, cuda or emu")->capture_default_str();
  app.add_option("--net", a.net, "resse_lka_unet, unet or attention_unet")->capture_default_str();
  app.add_option("--widths", a.widths, "channels per level, comma-separated")->capture_default_str();
  app.add_option("--batch", a.batch)->capture_default_str();
  app.add_option("--size", a.size, "image side")->capture_default_str();
  app.add_option("--steps", a.steps, "timed steps")->capture_default_str();
  app.add_option("--warmup", a.warmup, "untimed steps first")->capture_default_str();
  app.add_option("--threads", a.threads, "OpenMP threads (0: default)")->capture_default_str();
  app.add_option("--graph", a.graph, "on or off: CUDA Graph capture of the step")->capture_default_str();
  app.add_option("--precision", a.precision, "fp32, bf16 or fp16 (activations; cuda/emu backends)")->capture_default_str();
  app.add_option("--fuse", a.fuse, "on or off: batch norm fused with ReLU and the residual add (off: separate ops)")
      ->capture_default_str();
  app.add_flag("--tf32", a.tf32, "TF32 tensor-core math in cuDNN convolutions");
  app.add_flag("--inference", a.inference, "time the forward pass over one 155-slice case instead");
  app.add_flag("--ops", a.ops, "per-op table on stderr");
  app.add_option("--trace", a.trace, "write a Chrome/Perfetto trace JSON here");
  CLI11_PARSE(app, argc, argv);
#if !defined(STEP_PROFILE_EMU)
  if (a.backend == "emu") {
    // The emulated build is a separate program (sanitised, other runtime).
    const auto self = std::filesystem::read_symlink("/proc/self/exe");
    const std::string twin = (self.parent_path() / "step_profile_emu").string();
    execv(twin.c_str(), argv);
    std::fprintf(stderr, "step_profile: cannot run %s for --backend emu\n", twin.c_str());
    return 2;
  }
#endif
  try {
    return lk::bench::run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "step_profile: %s\n", e.what());
    return 1;
  }
}
