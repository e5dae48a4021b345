// bench_gpu_kernels: Google Benchmark suite of every op of the CUDA backend at
// the shapes of the paper's ResSE-LKA-UNet (batch 8, 128x128, encoder levels
// 32..512 channels), forward and backward, plus an AdamW step over the default
// network's parameters and a whole training step of that network.
//
// Where the backend has two implementations of an op both are timed, in
// adjacent rows .../ours/... (KernelVariant::Fast, our kernel) and
// .../cudnn/... (Reference, the cuDNN path), selected per op through
// Backend::set_variant(op, v): depthwise convolutions (cuDNN grouped
// convolution), training batch norm, relu/sigmoid, the broadcast multiply,
// global average pooling, softmax, and the fused LKA gate (reference: the
// cuDNN batch norm, sigmoid and multiply). Dense and transposed convolutions
// run on cuDNN in both variants (our direct kernel only serves the emulator)
// and get one .../cudnn/... row; the rest is ours alone (.../ours/...).
//
// Validation before timing, memoised per op and shape: two-variant ops run
// both variants on the same full-batch inputs and compare them; ops with one
// implementation are compared against the CPU backend on a batch of 2; the
// training step against the CPU backend at batch 2 (loss and every parameter
// gradient). A scaled error above 1e-4 skips the rows with an error (as does
// an exception), and the process then exits 1. TF32 is off throughout (float32 FMA in cuDNN).
//
// Timing: CUDA events around each call, on the legacy default stream, which
// orders with the backend's (blocking) stream; kDepth calls are kept in flight
// so the host's launch work overlaps the GPU's. See bench/README.md.
//
//   ./build/bench/bench_gpu_kernels --benchmark_filter='dwconv_5x5_fwd/'
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
#include "kernels/conv_transpose2d.h"
#include "kernels/cuda/runtime_api.h"
#include "model/loss.h"
#include "model/networks.h"

namespace lk::bench {
namespace {

const Device kGpu{DeviceType::CUDA, 0};
Backend& gpu() { return backend(kGpu); }  // registered by cuda::cuda_backend(0) in main

constexpr int64_t kF = sizeof(float);  // bytes per element (float and int32 alike)
constexpr int64_t kValBatch = 2;       // batch of the comparisons against the CPU backend

int g_failures = 0;  // rows that failed validation or threw

// ------------------------------------------------------------------ variants

// Outside these scopes the GPU backend has no per-op overrides and the
// global variant Fast.
//
// Per-op selection (Backend::set_variant(op, v)) for the ops one benchmark
// calls; clears the overrides on exit (the Backend cannot drop a single one).
class OpVariantScope {
 public:
  OpVariantScope(const std::vector<std::string>& ops, KernelVariant v) {
    for (const std::string& op : ops) gpu().set_variant(op, v);
  }
  ~OpVariantScope() { gpu().clear_op_variants(); }
  OpVariantScope(const OpVariantScope&) = delete;
  OpVariantScope& operator=(const OpVariantScope&) = delete;
};

// The global variant, for whole networks: every op with two implementations
// then runs ours (Fast) or the library's (Reference).
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

const char* tag(KernelVariant v) { return v == KernelVariant::Fast ? "ours" : "cudnn"; }

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

// ------------------------------------------------------------------ buffers

// The named tensors of one call: inputs random, outputs and gradients zero.
using Bufs = std::map<std::string, Tensor>;

Bufs copy_to(const Bufs& host, Device d) {
  Bufs out;
  for (const auto& [name, t] : host) out[name] = t.to(d);  // always a copy
  return out;
}

Tensor on_host(const Tensor& t) {
  Tensor h = t.device().type == DeviceType::CPU ? t : t.to(cpu_device());
  return h.dtype() == DType::F32 ? h : h.to(DType::F32);
}

// Scaled error of `got` against `want` (both any device, float or int32).
double compare(const Tensor& got, const Tensor& want, double floor = 1e-3) {
  return scaled_error(on_host(got), on_host(want), floor);
}

Shape act_shape(int64_t n, const Level& l) { return {n, l.c, l.hw, l.hw}; }

// ------------------------------------------------------------------ op table

// One benchmarked Backend call, buildable at any batch size.
struct OpDef {
  std::string name, label;               // row: <name>/<ours|cudnn>/<label>
  std::vector<std::string> variant_ops;  // Backend::set_variant op names of the call
  bool two_variants = false;             // ours (Fast) and cuDNN (Reference) rows
  bool cudnn_only = false;               // one row, cuDNN whatever the variant
  std::function<Bufs(int64_t n)> make;   // host tensors for batch n
  std::function<void(Backend&, const Bufs&)> run;
  std::vector<std::string> outs;         // compared by the validation
  // per call at batch kBatch
  int64_t items = 0, bytes = 0;
  double flops = 0, flops_valid = 0;
  std::string key() const { return name + "/" + label; }
};

struct Validation {
  double err = 0;
  int64_t batch = 0;
  std::string what;  // "ours vs cudnn" or "gpu vs cpu"
};

Validation validate(const OpDef& op) {
  static std::map<std::string, Validation> memo;
  if (auto it = memo.find(op.key()); it != memo.end()) return it->second;
  Validation v;
  if (op.two_variants) {
    v.batch = kBatch;
    v.what = "ours vs cudnn";
    const Bufs host = op.make(kBatch);
    const Bufs fast = copy_to(host, kGpu), ref = copy_to(host, kGpu);
    {
      OpVariantScope s(op.variant_ops, KernelVariant::Fast);
      op.run(gpu(), fast);
    }
    {
      OpVariantScope s(op.variant_ops, KernelVariant::Reference);
      op.run(gpu(), ref);
    }
    gpu().synchronize();
    for (const std::string& o : op.outs) v.err = std::max(v.err, compare(fast.at(o), ref.at(o)));
  } else {
    v.batch = kValBatch;
    v.what = "gpu vs cpu";
    const Bufs host = op.make(kValBatch);
    const Bufs cpu = copy_to(host, cpu_device()), dev = copy_to(host, kGpu);
    op.run(cpu_backend(), cpu);
    {
      OpVariantScope s(op.variant_ops, KernelVariant::Fast);
      op.run(gpu(), dev);
    }
    gpu().synchronize();
    for (const std::string& o : op.outs) v.err = std::max(v.err, compare(dev.at(o), cpu.at(o)));
  }
  return memo[op.key()] = v;
}

// Full-batch device buffers of the op being timed; one op at a time (the
// rows of an op are adjacent and Google Benchmark re-enters each row several
// times), so device memory holds one op's tensors. Released by
// release_device_tensors() before exit, while the backend still exists.
std::string g_timing_key;
Bufs g_timing_bufs;

const Bufs& timing_bufs(const OpDef& op) {
  if (g_timing_key != op.key()) {
    g_timing_bufs.clear();
    g_timing_key.clear();
    g_timing_bufs = copy_to(op.make(kBatch), kGpu);
    g_timing_key = op.key();
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
  if (v.err <= kValidationTol) return true;
  char msg[160];
  std::snprintf(msg, sizeof msg, "validation failed: %s scaled error %.3g > %.0e (batch %lld)", v.what.c_str(), v.err,
                kValidationTol, static_cast<long long>(v.batch));
  ++g_failures;
  st.SkipWithError(msg);
  return false;
}

void op_bench(benchmark::State& st, const OpDef& op, KernelVariant variant) {
  try {
    if (!check_validation(st, validate(op))) return;
    const Bufs& b = timing_bufs(op);
    OpVariantScope scope(op.variant_ops, variant);
    Backend& be = gpu();
    time_gpu(st, [&] { op.run(be, b); }, 2);
    set_items(st, op.items);
    if (op.bytes) set_bytes(st, op.bytes);
    if (op.flops > 0) set_flops(st, "flops", op.flops);
    if (op.flops_valid > 0 && op.flops_valid < 0.99 * op.flops) set_flops(st, "flops_valid", op.flops_valid);
  } catch (const std::exception& e) {
    fail(st, e);
  }
}

void add_op(OpDef def) {
  const auto op = std::make_shared<const OpDef>(std::move(def));
  std::vector<KernelVariant> variants{KernelVariant::Fast};
  if (op->two_variants) variants.push_back(KernelVariant::Reference);
  for (KernelVariant v : variants) {
    const char* t = op->two_variants || !op->cudnn_only ? tag(v) : "cudnn";
    benchmark::RegisterBenchmark((op->name + "/" + t + "/" + op->label).c_str(),
                                 [op, v](benchmark::State& st) { op_bench(st, *op, v); })
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  }
}

// ------------------------------------------------------------------ convolutions

enum class Pass { Fwd, BwdData, BwdWeight };
const char* pass_name(Pass p) {
  switch (p) {
    case Pass::Fwd: return "fwd";
    case Pass::BwdData: return "bwd_data";
    case Pass::BwdWeight: return "bwd_weight";
  }
  return "?";
}

struct ConvShape {
  bool transposed = false;
  int64_t c_in = 0, hw = 0, c_out = 0, k = 1, stride = 1, pad = 0, dil = 1, groups = 1;

  // The Backend's geometry: conv2d's own, or for the transposed convolution
  // that of its adjoint convolution.
  ConvGeom geom(int64_t n) const {
    if (transposed) return cpu::conv_t_geom(n, c_in, hw, hw, c_out, k, stride, pad, dil);
    ConvGeom g{};
    g.n = n, g.c_in = c_in, g.h = g.w = hw, g.c_out = c_out, g.kh = g.kw = k;
    g.stride = stride, g.pad = pad, g.dil = dil, g.groups = groups;
    if (!g.finish()) throw std::logic_error("bench: empty convolution");
    return g;
  }
  Shape x(int64_t n) const { return {n, c_in, hw, hw}; }
  Shape w() const { return transposed ? Shape{c_in, c_out, k, k} : Shape{c_out, c_in / groups, k, k}; }
  Shape y(int64_t n) const {
    const ConvGeom g = geom(n);
    return transposed ? Shape{n, c_out, g.h, g.w} : Shape{n, c_out, g.oh, g.ow};
  }
  // Multiply-adds of one pass: every tap, or only those inside the image.
  double macs(int64_t n) const {
    const ConvGeom g = geom(n);
    return static_cast<double>(g.n) * g.c_out * (g.c_in / g.groups) * g.oh * g.ow * g.kh * g.kw;
  }
  double valid_macs(int64_t n) const {
    const ConvGeom g = geom(n);
    auto inside = [&](int64_t size, int64_t out) {
      int64_t taps = 0;
      for (int64_t t = 0; t < g.kh; ++t)
        for (int64_t o = 0; o < out; ++o) {
          const int64_t i = o * g.stride - g.pad + t * g.dil;
          taps += i >= 0 && i < size;
        }
      return static_cast<double>(taps);
    };
    return static_cast<double>(g.n) * g.c_out * (g.c_in / g.groups) * inside(g.h, g.oh) * inside(g.w, g.ow);
  }
};

void add_conv(const std::string& op, const std::string& label, const ConvShape& s, bool depthwise) {
  for (Pass p : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight}) {
    OpDef d;
    d.name = op + "_" + pass_name(p);
    d.label = label;
    d.variant_ops = {s.transposed ? "conv_transpose2d" : "conv2d"};
    d.two_variants = depthwise;
    d.cudnn_only = !depthwise;
    d.make = [s, p](int64_t n) {
      Bufs b;
      switch (p) {
        case Pass::Fwd:
          b["x"] = rand_tensor(s.x(n), 1);
          b["w"] = rand_tensor(s.w(), 2, -0.1f, 0.1f);
          b["b"] = rand_tensor({s.c_out}, 3);
          b["y"] = Tensor::zeros(s.y(n));
          break;
        case Pass::BwdData:
          b["dy"] = rand_tensor(s.y(n), 4);
          b["w"] = rand_tensor(s.w(), 2, -0.1f, 0.1f);
          b["dx"] = Tensor::zeros(s.x(n));
          break;
        case Pass::BwdWeight:
          b["dy"] = rand_tensor(s.y(n), 4);
          b["x"] = rand_tensor(s.x(n), 1);
          b["dw"] = Tensor::zeros(s.w());
          b["db"] = Tensor::zeros({s.c_out});
          break;
      }
      return b;
    };
    d.run = [s, p](Backend& be, const Bufs& b) {
      const ConvGeom g = s.geom(b.at(p == Pass::BwdData ? "dx" : "x").size(0));
      switch (p) {
        case Pass::Fwd:
          if (s.transposed) be.conv_t2d_fwd(g, b.at("x"), b.at("w"), b.at("b"), b.at("y"));
          else be.conv2d_fwd(g, b.at("x"), b.at("w"), b.at("b"), b.at("y"));
          break;
        case Pass::BwdData:
          if (s.transposed) be.conv_t2d_bwd_data(g, b.at("dy"), b.at("w"), b.at("dx"));
          else be.conv2d_bwd_data(g, b.at("dy"), b.at("w"), b.at("dx"));
          break;
        case Pass::BwdWeight:
          if (s.transposed) be.conv_t2d_bwd_weight(g, b.at("dy"), b.at("x"), b.at("dw"), b.at("db"));
          else be.conv2d_bwd_weight(g, b.at("dy"), b.at("x"), b.at("dw"), b.at("db"));
          break;
      }
    };
    const int64_t ex = shape_numel(s.x(kBatch)), ey = shape_numel(s.y(kBatch)), ew = shape_numel(s.w());
    switch (p) {
      case Pass::Fwd:
        d.outs = {"y"};
        d.bytes = (ex + ew + s.c_out + ey) * kF;
        break;
      case Pass::BwdData:
        d.outs = {"dx"};
        d.bytes = (ey + ew + 2 * ex) * kF;
        break;
      case Pass::BwdWeight:
        d.outs = {"dw", "db"};
        d.bytes = (ey + ex + 2 * (ew + s.c_out)) * kF;
        break;
    }
    d.items = ey;
    d.flops = 2 * s.macs(kBatch);
    d.flops_valid = 2 * s.valid_macs(kBatch);
    add_op(std::move(d));
  }
}

ConvShape same_channels(const Level& l, int64_t k, int64_t pad, int64_t dil, bool depthwise) {
  ConvShape s;
  s.c_in = s.c_out = l.c;
  s.hw = l.hw;
  s.k = k, s.pad = pad, s.dil = dil;
  s.groups = depthwise ? l.c : 1;
  return s;
}

void register_convs() {
  const auto& lv = all_levels();
  for (const Level& l : lv) add_conv("conv2d_3x3", l.str(), same_channels(l, 3, 1, 1, false), false);
  for (const Level& l : lv) add_conv("conv2d_1x1", l.str(), same_channels(l, 1, 0, 1, false), false);
  for (const Level& l : lv) add_conv("dwconv_5x5", l.str(), same_channels(l, 5, 2, 1, true), true);
  for (const Level& l : lv) add_conv("dwconv_7x7_dil3", l.str(), same_channels(l, 7, 9, 3, true), true);
  // The default network's LKA (NetConfig::lka_dilation = 1).
  for (const Level& l : lv) add_conv("dwconv_7x7", l.str(), same_channels(l, 7, 3, 1, true), true);
  // Decoder upsampling: level i+1 (2C channels) -> level i (C channels).
  for (size_t i = 0; i + 1 < lv.size(); ++i) {
    ConvShape s;
    s.transposed = true;
    s.c_in = lv[i + 1].c, s.c_out = lv[i].c, s.hw = lv[i + 1].hw;
    s.k = 2, s.stride = 2;
    add_conv("conv_t2d_2x2s2", lv[i + 1].str() + "-" + lv[i].str(), s, false);
  }
}

// ------------------------------------------------------------------ memory-bound ops

// An op with one implementation (ours), or with two when `two` is set.
OpDef op_def(std::string name, std::string label, std::string variant_op, bool two) {
  OpDef d;
  d.name = std::move(name);
  d.label = std::move(label);
  d.variant_ops = {std::move(variant_op)};
  d.two_variants = two;
  return d;
}

void add_batch_norm(const Level& l) {
  auto inputs = [l](int64_t n) {
    return Bufs{{"x", rand_tensor(act_shape(n, l), 1)},    {"gamma", rand_tensor({l.c}, 2, 0.5f, 1.5f)},
                {"beta", rand_tensor({l.c}, 3)},           {"rm", Tensor::zeros({l.c})},
                {"rv", Tensor::full({l.c}, 1.0)},          {"y", Tensor::zeros(act_shape(n, l))},
                {"mean", Tensor::zeros({l.c})},            {"invstd", Tensor::zeros({l.c})}};
  };
  auto fwd = [](Backend& be, const Bufs& b) {
    be.batch_norm_fwd(b.at("x"), b.at("gamma"), b.at("beta"), b.at("rm"), b.at("rv"), true, 0.1, 1e-5, b.at("y"),
                      b.at("mean"), b.at("invstd"));
  };
  const int64_t e = shape_numel(act_shape(kBatch, l));

  OpDef f = op_def("batch_norm_train_fwd", l.str(), "batch_norm", true);
  f.make = inputs;
  f.run = fwd;
  f.outs = {"y", "mean", "invstd", "rm", "rv"};
  f.items = e, f.bytes = 2 * e * kF;
  add_op(std::move(f));

  OpDef g = op_def("batch_norm_train_bwd", l.str(), "batch_norm", true);
  g.make = [=](int64_t n) {
    Bufs b = inputs(n);
    fwd(cpu_backend(), b);  // the saved statistics
    b["dy"] = rand_tensor(act_shape(n, l), 4);
    b["dx"] = Tensor::zeros(act_shape(n, l));
    b["dgamma"] = Tensor::zeros({l.c});
    b["dbeta"] = Tensor::zeros({l.c});
    return b;
  };
  g.run = [](Backend& be, const Bufs& b) {
    be.batch_norm_bwd(b.at("dy"), b.at("x"), b.at("gamma"), b.at("mean"), b.at("invstd"), true, b.at("dx"),
                      b.at("dgamma"), b.at("dbeta"));
  };
  g.outs = {"dx", "dgamma", "dbeta"};
  g.items = e, g.bytes = 4 * e * kF;
  add_op(std::move(g));
}

// The LKA tail y = x * sigmoid(BN(f)) in one call: ours is the fused kernel,
// the reference the composition of the backend's batch norm, sigmoid and
// multiply, so its cuDNN row selects the cuDNN path of all three.
void add_lka_gate(const Level& l) {
  auto inputs = [l](int64_t n) {
    return Bufs{{"x", rand_tensor(act_shape(n, l), 1)},    {"f", rand_tensor(act_shape(n, l), 5, -2.f, 2.f)},
                {"gamma", rand_tensor({l.c}, 2, 0.5f, 1.5f)}, {"beta", rand_tensor({l.c}, 3)},
                {"rm", Tensor::zeros({l.c})},              {"rv", Tensor::full({l.c}, 1.0)},
                {"y", Tensor::zeros(act_shape(n, l))},     {"mean", Tensor::zeros({l.c})},
                {"invstd", Tensor::zeros({l.c})}};
  };
  auto fwd = [](Backend& be, const Bufs& b) {
    be.lka_gate_fwd(b.at("x"), b.at("f"), b.at("gamma"), b.at("beta"), b.at("rm"), b.at("rv"), true, 0.1, 1e-5,
                    b.at("y"), b.at("mean"), b.at("invstd"));
  };
  const std::vector<std::string> ops{"lka_gate", "batch_norm", "activation", "binary"};
  const int64_t e = shape_numel(act_shape(kBatch, l));

  OpDef f = op_def("lka_gate_train_fwd", l.str(), "lka_gate", true);
  f.variant_ops = ops;
  f.make = inputs;
  f.run = fwd;
  f.outs = {"y", "mean", "invstd", "rm", "rv"};
  f.items = e, f.bytes = 3 * e * kF;
  add_op(std::move(f));

  OpDef g = op_def("lka_gate_train_bwd", l.str(), "lka_gate", true);
  g.variant_ops = ops;
  g.make = [=](int64_t n) {
    Bufs b = inputs(n);
    fwd(cpu_backend(), b);  // the saved statistics
    b["dy"] = rand_tensor(act_shape(n, l), 4);
    b["dx"] = Tensor::zeros(act_shape(n, l));
    b["df"] = Tensor::zeros(act_shape(n, l));
    b["dgamma"] = Tensor::zeros({l.c});
    b["dbeta"] = Tensor::zeros({l.c});
    return b;
  };
  g.run = [](Backend& be, const Bufs& b) {
    be.lka_gate_bwd(b.at("dy"), b.at("x"), b.at("f"), b.at("gamma"), b.at("beta"), b.at("mean"), b.at("invstd"), true,
                    b.at("dx"), b.at("df"), b.at("dgamma"), b.at("dbeta"));
  };
  g.outs = {"dx", "df", "dgamma", "dbeta"};
  g.items = e, g.bytes = 7 * e * kF;  // read dy, x, f; read and write dx, df
  add_op(std::move(g));
}

void add_activation(const char* name, Activation a, const Level& l) {
  const int64_t e = shape_numel(act_shape(kBatch, l));
  auto inputs = [l](int64_t n) {
    return Bufs{{"x", rand_tensor(act_shape(n, l), 1, -4.f, 4.f)}, {"y", Tensor::zeros(act_shape(n, l))}};
  };
  OpDef f = op_def(std::string(name) + "_fwd", l.str(), "activation", true);
  f.make = inputs;
  f.run = [a](Backend& be, const Bufs& b) { be.activation_fwd(a, b.at("x"), b.at("y")); };
  f.outs = {"y"};
  f.items = e, f.bytes = 2 * e * kF;
  add_op(std::move(f));

  OpDef g = op_def(std::string(name) + "_bwd", l.str(), "activation", true);
  g.make = [=](int64_t n) {
    Bufs b = inputs(n);
    cpu_backend().activation_fwd(a, b.at("x"), b.at("y"));
    b["dy"] = rand_tensor(act_shape(n, l), 2);
    b["dx"] = Tensor::zeros(act_shape(n, l));
    return b;
  };
  g.run = [a](Backend& be, const Bufs& b) { be.activation_bwd(a, b.at("dy"), b.at("y"), b.at("dx")); };
  g.outs = {"dx"};
  g.items = e, g.bytes = 4 * e * kF;
  add_op(std::move(g));
}

// The SE rescale: x (N, C, H, W) * s (N, C, 1, 1).
void add_broadcast_mul(const Level& l) {
  const int64_t e = shape_numel(act_shape(kBatch, l)), nc = kBatch * l.c;
  auto sshape = [l](int64_t n) { return Shape{n, l.c, 1, 1}; };
  OpDef f = op_def("mul_bcast_nc11_fwd", l.str(), "binary", true);
  f.make = [=](int64_t n) {
    return Bufs{{"x", rand_tensor(act_shape(n, l), 1)},
                {"s", rand_tensor(sshape(n), 2, 0.f, 1.f)},
                {"y", Tensor::zeros(act_shape(n, l))}};
  };
  f.run = [](Backend& be, const Bufs& b) { be.binary_fwd(BinaryOp::Mul, b.at("x"), b.at("s"), b.at("y")); };
  f.outs = {"y"};
  f.items = e, f.bytes = (2 * e + nc) * kF;
  add_op(std::move(f));

  OpDef g = op_def("mul_bcast_nc11_bwd", l.str(), "binary", true);
  g.make = [=](int64_t n) {
    return Bufs{{"x", rand_tensor(act_shape(n, l), 1)},  {"s", rand_tensor(sshape(n), 2, 0.f, 1.f)},
                {"dy", rand_tensor(act_shape(n, l), 3)}, {"dx", Tensor::zeros(act_shape(n, l))},
                {"ds", Tensor::zeros(sshape(n))}};
  };
  g.run = [](Backend& be, const Bufs& b) {
    be.binary_bwd(BinaryOp::Mul, b.at("dy"), b.at("s"), b.at("dx"));  // dx += dy * s
    be.binary_bwd(BinaryOp::Mul, b.at("dy"), b.at("x"), b.at("ds"));  // ds += sum_hw dy * x
  };
  g.outs = {"dx", "ds"};
  g.items = e, g.bytes = (4 * e + 3 * nc) * kF;
  add_op(std::move(g));
}

void add_global_avg_pool(const Level& l) {
  const int64_t e = shape_numel(act_shape(kBatch, l)), nc = kBatch * l.c;
  OpDef f = op_def("global_avg_pool_fwd", l.str(), "global_avg_pool", true);
  f.make = [l](int64_t n) {
    return Bufs{{"x", rand_tensor(act_shape(n, l), 1)}, {"y", Tensor::zeros({n, l.c, 1, 1})}};
  };
  f.run = [](Backend& be, const Bufs& b) { be.global_avg_pool_fwd(b.at("x"), b.at("y")); };
  f.outs = {"y"};
  f.items = e, f.bytes = (e + nc) * kF;
  add_op(std::move(f));

  OpDef g = op_def("global_avg_pool_bwd", l.str(), "global_avg_pool", true);
  g.make = [l](int64_t n) {
    return Bufs{{"dy", rand_tensor({n, l.c, 1, 1}, 1)}, {"dx", Tensor::zeros(act_shape(n, l))}};
  };
  g.run = [](Backend& be, const Bufs& b) { be.global_avg_pool_bwd(b.at("dy"), b.at("dx")); };
  g.outs = {"dx"};
  g.items = e, g.bytes = (2 * e + nc) * kF;
  add_op(std::move(g));
}

void add_max_pool(const Level& l) {
  const int64_t e = shape_numel(act_shape(kBatch, l)), eo = e / 4;
  auto oshape = [l](int64_t n) { return Shape{n, l.c, l.hw / 2, l.hw / 2}; };
  auto inputs = [=](int64_t n) {
    return Bufs{{"x", rand_tensor(act_shape(n, l), 1)},
                {"y", Tensor::zeros(oshape(n))},
                {"idx", Tensor::zeros(oshape(n), DType::I32)}};
  };
  OpDef f = op_def("max_pool2d_2x2_fwd", l.str(), "max_pool2d", false);
  f.make = inputs;
  f.run = [](Backend& be, const Bufs& b) { be.max_pool2d_fwd(2, 2, b.at("x"), b.at("y"), b.at("idx")); };
  f.outs = {"y", "idx"};
  f.items = e, f.bytes = (e + 2 * eo) * kF;
  add_op(std::move(f));

  OpDef g = op_def("max_pool2d_2x2_bwd", l.str(), "max_pool2d", false);
  g.make = [=](int64_t n) {
    Bufs b = inputs(n);
    cpu_backend().max_pool2d_fwd(2, 2, b.at("x"), b.at("y"), b.at("idx"));
    b["dy"] = rand_tensor(oshape(n), 2);
    b["dx"] = Tensor::zeros(act_shape(n, l));
    return b;
  };
  g.run = [](Backend& be, const Bufs& b) { be.max_pool2d_bwd(2, 2, b.at("dy"), b.at("idx"), b.at("dx")); };
  g.outs = {"dx"};
  g.items = e, g.bytes = (2 * e + 2 * eo) * kF;
  add_op(std::move(g));
}

// A decoder skip connection: two (N, C, H, W) blocks into (N, 2C, H, W).
void add_concat(const Level& l) {
  auto cat_shape = [l](int64_t n) { return Shape{n, 2 * l.c, l.hw, l.hw}; };
  const int64_t e = shape_numel(cat_shape(kBatch));
  const std::string label = l.str() + "+" + std::to_string(l.c);
  OpDef f = op_def("concat_fwd", label, "concat", false);
  f.make = [=](int64_t n) {
    return Bufs{{"a", rand_tensor(act_shape(n, l), 1)},
                {"b", rand_tensor(act_shape(n, l), 2)},
                {"y", Tensor::zeros(cat_shape(n))}};
  };
  f.run = [c = l.c](Backend& be, const Bufs& b) {
    be.concat_fwd(0, b.at("a"), b.at("y"));
    be.concat_fwd(c, b.at("b"), b.at("y"));
  };
  f.outs = {"y"};
  f.items = e, f.bytes = 2 * e * kF;
  add_op(std::move(f));

  OpDef g = op_def("concat_bwd", label, "concat", false);
  g.make = [=](int64_t n) {
    return Bufs{{"dy", rand_tensor(cat_shape(n), 1)},
                {"da", Tensor::zeros(act_shape(n, l))},
                {"db", Tensor::zeros(act_shape(n, l))}};
  };
  g.run = [c = l.c](Backend& be, const Bufs& b) {
    be.concat_bwd(0, b.at("dy"), b.at("da"));
    be.concat_bwd(c, b.at("dy"), b.at("db"));
  };
  g.outs = {"da", "db"};
  g.items = e, g.bytes = 3 * e * kF;
  add_op(std::move(g));
}

// The SE block's two fully connected layers: (N, C) -> (N, hidden) -> (N, C),
// hidden = max(C / 16, 4) as in the default NetConfig.
void add_linear(const Level& l) {
  const int64_t hidden = std::max<int64_t>(l.c / 16, 4);
  for (auto [in, out] : {std::pair{l.c, hidden}, std::pair{hidden, l.c}}) {
    const std::string label = std::to_string(in) + "-" + std::to_string(out);
    const double macs = static_cast<double>(kBatch) * in * out;
    OpDef f = op_def("linear_se_fwd", label, "linear", false);
    f.make = [=](int64_t n) {
      return Bufs{{"x", rand_tensor({n, in}, 1)},
                  {"w", rand_tensor({out, in}, 2, -0.2f, 0.2f)},
                  {"b", rand_tensor({out}, 3)},
                  {"y", Tensor::zeros({n, out})}};
    };
    f.run = [](Backend& be, const Bufs& b) { be.linear_fwd(b.at("x"), b.at("w"), b.at("b"), b.at("y")); };
    f.outs = {"y"};
    f.items = kBatch * out, f.bytes = (kBatch * in + out * in + out + kBatch * out) * kF;
    f.flops = 2 * macs;
    add_op(std::move(f));

    OpDef g = op_def("linear_se_bwd", label, "linear", false);
    g.make = [=](int64_t n) {
      return Bufs{{"x", rand_tensor({n, in}, 1)},        {"w", rand_tensor({out, in}, 2, -0.2f, 0.2f)},
                  {"dy", rand_tensor({n, out}, 4)},      {"dx", Tensor::zeros({n, in})},
                  {"dw", Tensor::zeros({out, in})},      {"db", Tensor::zeros({out})}};
    };
    g.run = [](Backend& be, const Bufs& b) {
      be.linear_bwd(b.at("dy"), b.at("x"), b.at("w"), b.at("dx"), b.at("dw"), b.at("db"));
    };
    g.outs = {"dx", "dw", "db"};
    g.items = kBatch * out;
    g.bytes = (kBatch * out + kBatch * in + out * in + 2 * (kBatch * in + out * in + out)) * kF;
    g.flops = 4 * macs;
    add_op(std::move(g));
  }
}

// ------------------------------------------------------------------ loss head

// The deep-supervision logits at 64, 32, 16 brought to 128x128 (bilinear).
void add_upsample(int64_t hw) {
  const int64_t f = kImage / hw;
  auto in = [hw](int64_t n) { return Shape{n, kClasses, hw, hw}; };
  auto out = [](int64_t n) { return Shape{n, kClasses, kImage, kImage}; };
  const int64_t ei = shape_numel(in(kBatch)), eo = shape_numel(out(kBatch));
  const std::string name = "upsample_bilinear_x" + std::to_string(f), label = Level{hw, kClasses}.str();

  OpDef fw = op_def(name + "_fwd", label, "upsample", false);
  fw.make = [=](int64_t n) { return Bufs{{"x", rand_tensor(in(n), 1)}, {"y", Tensor::zeros(out(n))}}; };
  fw.run = [f](Backend& be, const Bufs& b) { be.upsample_fwd(UpsampleMode::Bilinear, f, b.at("x"), b.at("y")); };
  fw.outs = {"y"};
  fw.items = eo, fw.bytes = (ei + eo) * kF;
  add_op(std::move(fw));

  OpDef bw = op_def(name + "_bwd", label, "upsample", false);
  bw.make = [=](int64_t n) { return Bufs{{"dy", rand_tensor(out(n), 1)}, {"dx", Tensor::zeros(in(n))}}; };
  bw.run = [f](Backend& be, const Bufs& b) { be.upsample_bwd(UpsampleMode::Bilinear, f, b.at("dy"), b.at("dx")); };
  bw.outs = {"dx"};
  bw.items = eo, bw.bytes = (eo + 2 * ei) * kF;
  add_op(std::move(bw));
}

void add_loss_head() {
  auto lshape = [](int64_t n) { return Shape{n, kClasses, kImage, kImage}; };
  auto tshape = [](int64_t n) { return Shape{n, kImage, kImage}; };
  const int64_t e = shape_numel(lshape(kBatch)), et = shape_numel(tshape(kBatch));
  const std::string label = Level{kImage, kClasses}.str();
  auto logits = [=](int64_t n) { return rand_tensor(lshape(n), 1, -3.f, 3.f); };
  auto probs_of = [=](const Tensor& x) {
    Tensor p = Tensor::zeros(x.shape());
    cpu_backend().softmax_fwd(x, p);
    return p;
  };
  // The training loss's class weights (model::LossConfig).
  auto class_weights = [] {
    const model::LossConfig c;
    return Tensor::from_vector(c.class_weights, {kClasses});
  };

  OpDef sf = op_def("softmax_fwd", label, "softmax", true);
  sf.make = [=](int64_t n) { return Bufs{{"x", logits(n)}, {"y", Tensor::zeros(lshape(n))}}; };
  sf.run = [](Backend& be, const Bufs& b) { be.softmax_fwd(b.at("x"), b.at("y")); };
  sf.outs = {"y"};
  sf.items = e, sf.bytes = 2 * e * kF;
  add_op(std::move(sf));

  OpDef sb = op_def("softmax_bwd", label, "softmax", true);
  sb.make = [=](int64_t n) {
    return Bufs{{"y", probs_of(logits(n))}, {"dy", rand_tensor(lshape(n), 2)}, {"dx", Tensor::zeros(lshape(n))}};
  };
  sb.run = [](Backend& be, const Bufs& b) { be.softmax_bwd(b.at("dy"), b.at("y"), b.at("dx")); };
  sb.outs = {"dx"};
  sb.items = e, sb.bytes = 4 * e * kF;
  add_op(std::move(sb));

  auto ce_inputs = [=](int64_t n) {
    return Bufs{{"x", logits(n)},
                {"t", labels(tshape(n), kClasses, 2)},
                {"w", class_weights()},
                {"loss", Tensor::zeros({1})},
                {"probs", Tensor::zeros(lshape(n))},
                {"wsum", Tensor::zeros({1})}};
  };
  auto ce_fwd = [](Backend& be, const Bufs& b) {
    be.cross_entropy_fwd(b.at("x"), b.at("t"), b.at("w"), b.at("loss"), b.at("probs"), b.at("wsum"));
  };
  OpDef cf = op_def("cross_entropy_weighted_fwd", label, "cross_entropy", false);
  cf.make = ce_inputs;
  cf.run = ce_fwd;
  cf.outs = {"loss", "probs", "wsum"};
  cf.items = e, cf.bytes = (2 * e + et) * kF;
  add_op(std::move(cf));

  OpDef cb = op_def("cross_entropy_weighted_bwd", label, "cross_entropy", false);
  cb.make = [=](int64_t n) {
    Bufs b = ce_inputs(n);
    ce_fwd(cpu_backend(), b);
    b["dloss"] = Tensor::full({1}, 1.0);
    b["dx"] = Tensor::zeros(lshape(n));
    return b;
  };
  cb.run = [](Backend& be, const Bufs& b) {
    be.cross_entropy_bwd(b.at("dloss"), b.at("probs"), b.at("t"), b.at("w"), b.at("wsum"), b.at("dx"));
  };
  cb.outs = {"dx"};
  cb.items = e, cb.bytes = (3 * e + et) * kF;
  add_op(std::move(cb));

  const TverskyParams tp = model::LossConfig{}.tversky;
  auto tv_inputs = [=](int64_t n) {
    return Bufs{{"p", probs_of(logits(n))},
                {"t", labels(tshape(n), kClasses, 2)},
                {"loss", Tensor::zeros({1})},
                {"stats", Tensor::zeros({4 * kClasses})}};
  };
  auto tv_fwd = [tp](Backend& be, const Bufs& b) { be.tversky_fwd(tp, b.at("p"), b.at("t"), b.at("loss"), b.at("stats")); };
  OpDef tf = op_def("tversky_fwd", label, "tversky", false);
  tf.make = tv_inputs;
  tf.run = tv_fwd;
  tf.outs = {"loss", "stats"};
  tf.items = e, tf.bytes = (e + et) * kF;
  add_op(std::move(tf));

  OpDef tb = op_def("tversky_bwd", label, "tversky", false);
  tb.make = [=](int64_t n) {
    Bufs b = tv_inputs(n);
    tv_fwd(cpu_backend(), b);
    b["dloss"] = Tensor::full({1}, 1.0);
    b["dp"] = Tensor::zeros(lshape(n));
    return b;
  };
  tb.run = [tp](Backend& be, const Bufs& b) { be.tversky_bwd(tp, b.at("dloss"), b.at("t"), b.at("stats"), b.at("dp")); };
  tb.outs = {"dp"};
  tb.items = e, tb.bytes = (2 * e + et) * kF;
  add_op(std::move(tb));
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
    const cpu::AdamWParams a{};
    static const Validation val = [&] {
      Validation v{0, 0, "gpu vs cpu"};
      AdamWState c = adamw_state(cpu_device()), g = adamw_state(kGpu);
      cpu_backend().adamw_step(a, adamw_state(cpu_device(), a.lr, kAdamWStep - 1), c.params, c.m, c.v);
      gpu().adamw_step(a, adamw_state(kGpu, a.lr, kAdamWStep - 1), g.params, g.m, g.v);
      gpu().synchronize();
      for (size_t i = 0; i < c.params.size(); ++i)
        v.err = std::max({v.err, compare(g.params[i], c.params[i]), compare(g.m[i], c.m[i]), compare(g.v[i], c.v[i])});
      return v;
    }();
    if (!check_validation(st, val)) return;
    st.counters["val_batch"] = 0;  // all parameters, no batch
    AdamWState g = adamw_state(kGpu);
    Backend& be = gpu();
    const Tensor state = adamw_state(kGpu, a.lr, kAdamWStep - 1);
    time_gpu(st, [&] { be.adamw_step(a, state, g.params, g.m, g.v); }, 2);
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
    y = labels({n, kImage, kImage}, kClasses, 8).to(d);
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
  for (size_t i = 0; i < pc.size(); ++i) val.err = std::max(val.err, compare(pg[i].grad(), pc[i].grad(), 1e-2 * global));
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
  register_convs();
  for (const Level& l : all_levels()) add_batch_norm(l);
  for (const Level& l : all_levels()) add_lka_gate(l);
  for (const Level& l : all_levels()) add_activation("relu", Activation::Relu, l);
  for (const Level& l : all_levels()) add_activation("sigmoid", Activation::Sigmoid, l);
  for (const Level& l : all_levels()) add_broadcast_mul(l);
  for (const Level& l : all_levels()) add_global_avg_pool(l);
  for (const Level& l : all_levels()) add_max_pool(l);
  for (const Level& l : all_levels()) add_concat(l);
  for (const Level& l : all_levels()) add_linear(l);
  for (int64_t hw : {64, 32, 16}) add_upsample(hw);
  add_loss_head();
  benchmark::RegisterBenchmark("adamw_step/ours/resse_lka_unet", adamw_bench)
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
  for (KernelVariant v : {KernelVariant::Fast, KernelVariant::Reference})
    benchmark::RegisterBenchmark(
        (std::string("resse_lka_unet_train_step/") + tag(v) + "/" + std::to_string(kBatch) + "x4x" +
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
