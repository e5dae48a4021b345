// Convolution benchmarks: dense 3x3 and 1x1, the LKA's depthwise 5x5 and
// 7x7 dilation-3 convolutions, and the decoder's 2x2 stride-2 transposed
// convolution; forward, backward-data and backward-weight, each timed for the
// fast kernels and (at the shapes where the plain loops finish quickly) for the
// Reference variant. Before timing, every benchmark checks the fast kernel
// against the reference on (a batch prefix of) its own inputs.
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>

#include "bench/bench_common.h"
#include "kernels/conv_transpose2d.h"

namespace lk::bench {
namespace {

enum class Pass { Fwd, BwdData, BwdWeight };
const char* pass_name(Pass p) {
  switch (p) {
    case Pass::Fwd: return "fwd";
    case Pass::BwdData: return "bwd_data";
    case Pass::BwdWeight: return "bwd_weight";
  }
  return "?";
}

struct ConvSpec {
  std::string op, label;  // benchmark name parts
  bool transposed = false;
  int64_t n = kBatch, c_in = 0, h = 0, w = 0, c_out = 0, k = 1, stride = 1, pad = 0, dil = 1, groups = 1;

  // The geometry the Backend takes: conv2d's own, or for the transposed
  // convolution that of its adjoint convolution (conv_t_geom).
  ConvGeom geom() const {
    if (transposed) return cpu::conv_t_geom(n, c_in, h, w, c_out, k, stride, pad, dil);
    ConvGeom g;
    g.n = n, g.c_in = c_in, g.h = h, g.w = w, g.c_out = c_out, g.kh = g.kw = k;
    g.stride = stride, g.pad = pad, g.dil = dil, g.groups = groups;
    if (!g.finish()) throw std::logic_error("bench: empty convolution " + op + " " + label);
    return g;
  }
  Shape x_shape() const { return {n, c_in, h, w}; }
  Shape w_shape() const { return transposed ? Shape{c_in, c_out, k, k} : Shape{c_out, c_in / groups, k, k}; }
  Shape y_shape() const {
    const ConvGeom g = geom();
    return transposed ? Shape{n, c_out, g.h, g.w} : Shape{n, c_out, g.oh, g.ow};
  }
  int64_t y_numel() const { return shape_numel(y_shape()); }

  // Multiply-adds of one pass, nominal (every kernel tap, padding included)
  // and valid (only the taps that land inside the image).
  double macs() const {
    const ConvGeom g = geom();
    return static_cast<double>(g.n) * g.c_out * (g.c_in / g.groups) * g.oh * g.ow * g.kh * g.kw;
  }
  double valid_macs() const {
    const ConvGeom g = geom();
    auto taps = [&](int64_t size, int64_t out) {
      int64_t t = 0;
      for (int64_t kk = 0; kk < g.kh; ++kk)
        for (int64_t o = 0; o < out; ++o) {
          const int64_t i = o * g.stride - g.pad + kk * g.dil;
          t += i >= 0 && i < size;
        }
      return static_cast<double>(t);
    };
    return static_cast<double>(g.n) * g.c_out * (g.c_in / g.groups) * taps(g.h, g.oh) * taps(g.w, g.ow);
  }
  std::string key(Pass p) const { return op + "_" + pass_name(p) + "/" + label; }
};

struct ConvBufs {
  Tensor x, w, b, y, dy, dx, dw, db;
};

// Inputs random, outputs zero (backward passes accumulate into them).
ConvBufs make_bufs(const ConvSpec& s, Pass p) {
  ConvBufs t;
  const int64_t bias_c = s.c_out;
  switch (p) {
    case Pass::Fwd:
      t.x = rand_tensor(s.x_shape(), 1);
      t.w = rand_tensor(s.w_shape(), 2, -0.1f, 0.1f);
      t.b = rand_tensor({bias_c}, 3);
      t.y = Tensor::zeros(s.y_shape());
      break;
    case Pass::BwdData:
      t.dy = rand_tensor(s.y_shape(), 4);
      t.w = rand_tensor(s.w_shape(), 2, -0.1f, 0.1f);
      t.dx = Tensor::zeros(s.x_shape());
      break;
    case Pass::BwdWeight:
      t.dy = rand_tensor(s.y_shape(), 4);
      t.x = rand_tensor(s.x_shape(), 1);
      t.dw = Tensor::zeros(s.w_shape());
      t.db = Tensor::zeros({bias_c});
      break;
  }
  return t;
}

void run_pass(Backend& be, const ConvSpec& s, const ConvGeom& g, Pass p, const ConvBufs& t) {
  switch (p) {
    case Pass::Fwd:
      if (s.transposed) be.conv_t2d_fwd(g, t.x, t.w, t.b, t.y);
      else be.conv2d_fwd(g, t.x, t.w, t.b, t.y);
      break;
    case Pass::BwdData:
      if (s.transposed) be.conv_t2d_bwd_data(g, t.dy, t.w, t.dx);
      else be.conv2d_bwd_data(g, t.dy, t.w, t.dx);
      break;
    case Pass::BwdWeight:
      if (s.transposed) be.conv_t2d_bwd_weight(g, t.dy, t.x, t.dw, t.db);
      else be.conv2d_bwd_weight(g, t.dy, t.x, t.dw, t.db);
      break;
  }
  be.synchronize();
}

// The first nb images of a batch tensor (a contiguous prefix in NCHW).
Tensor batch_prefix(const Tensor& full, int64_t nb) {
  if (!full.defined()) return {};
  Shape s = full.shape();
  s[0] = nb;
  Tensor t = Tensor::empty(s);
  std::memcpy(t.raw(), full.raw(), t.nbytes());
  return t;
}

// Reference multiply-adds one validation may spend (about half a second of the
// plain loops on this machine); larger passes are checked on a batch prefix.
constexpr double kValidationMacs = 4e8;

// Runs the fast and the reference kernel once on the same inputs and returns
// the scaled error of the fast result; memoised per (op, pass, shape) because
// Google Benchmark re-enters a benchmark function for each trial run.
double validate(const ConvSpec& s, Pass p) {
  static std::map<std::string, double> cache;
  const std::string key = s.key(p);
  if (auto it = cache.find(key); it != cache.end()) return it->second;

  ConvSpec v = s;
  const double per_image = s.macs() / static_cast<double>(s.n);
  v.n = std::clamp<int64_t>(static_cast<int64_t>(kValidationMacs / per_image), 1, s.n);
  const ConvBufs full = make_bufs(s, p);
  ConvBufs fast;
  fast.x = batch_prefix(full.x, v.n);
  fast.dy = batch_prefix(full.dy, v.n);
  fast.w = full.w;
  fast.b = full.b;
  switch (p) {
    case Pass::Fwd: fast.y = Tensor::zeros(v.y_shape()); break;
    case Pass::BwdData: fast.dx = Tensor::zeros(v.x_shape()); break;
    case Pass::BwdWeight:
      fast.dw = Tensor::zeros(v.w_shape());
      fast.db = Tensor::zeros({v.c_out});
      break;
  }
  ConvBufs ref = fast;
  for (Tensor* o : {&ref.y, &ref.dx, &ref.dw, &ref.db})
    if (o->defined()) *o = Tensor::zeros(o->shape());

  Backend& be = cpu_backend();
  const ConvGeom g = v.geom();
  {
    VariantScope fast_scope(KernelVariant::Fast);
    run_pass(be, v, g, p, fast);
  }
  {
    VariantScope ref_scope(KernelVariant::Reference);
    run_pass(be, v, g, p, ref);
  }
  double err = 0;
  switch (p) {
    case Pass::Fwd: err = scaled_error(fast.y, ref.y); break;
    case Pass::BwdData: err = scaled_error(fast.dx, ref.dx); break;
    case Pass::BwdWeight: err = std::max(scaled_error(fast.dw, ref.dw), scaled_error(fast.db, ref.db)); break;
  }
  return cache[key] = err;
}

void conv_bench(benchmark::State& st, const ConvSpec& s, Pass p, KernelVariant variant) {
  const double err = validate(s, p);
  if (!(err <= kValidationTol)) {
    char msg[96];
    std::snprintf(msg, sizeof msg, "fast vs reference scaled error %.3g > %.0e", err, kValidationTol);
    st.SkipWithError(msg);
    return;
  }
  const ConvBufs t = make_bufs(s, p);
  const ConvGeom g = s.geom();
  Backend& be = cpu_backend();
  VariantScope scope(variant);
  for (auto _ : st) run_pass(be, s, g, p, t);

  const double macs = s.macs(), valid = s.valid_macs();
  set_flops(st, "flops", 2 * macs);
  if (valid < 0.99 * macs) set_flops(st, "flops_valid", 2 * valid);
  set_items(st, s.y_numel());
  st.counters["val_err"] = err;
}

void add(const ConvSpec& s, bool with_reference) {
  for (Pass p : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight}) {
    const std::string base = s.op + "_" + pass_name(p);
    benchmark::RegisterBenchmark((base + "/fast/" + s.label).c_str(),
                                 [s, p](benchmark::State& st) { conv_bench(st, s, p, KernelVariant::Fast); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(0.3);
    if (with_reference)
      benchmark::RegisterBenchmark((base + "/ref/" + s.label).c_str(),
                                   [s, p](benchmark::State& st) { conv_bench(st, s, p, KernelVariant::Reference); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(0.1);
  }
}

ConvSpec same_channels(const std::string& op, const Level& l, int64_t k, int64_t pad, int64_t dil, bool depthwise) {
  ConvSpec s;
  s.op = op;
  s.label = l.str();
  s.c_in = s.c_out = l.c;
  s.h = s.w = l.hw;
  s.k = k, s.pad = pad, s.dil = dil;
  s.groups = depthwise ? l.c : 1;
  return s;
}

}  // namespace

void register_conv_benchmarks() {
  const auto& lv = all_levels();
  auto small = [](const Level& l) { return l.hw <= 16; };  // where the dense reference loops are bearable

  for (const Level& l : lv) add(same_channels("conv2d_3x3", l, 3, 1, 1, false), small(l));
  for (const Level& l : lv) add(same_channels("conv2d_1x1", l, 1, 0, 1, false), small(l));
  for (const Level& l : lv) add(same_channels("dwconv_5x5", l, 5, 2, 1, true), true);
  for (const Level& l : lv) add(same_channels("dwconv_7x7_dil3", l, 7, 9, 3, true), true);

  // Decoder upsampling: level i+1 (2C channels) -> level i (C channels).
  for (size_t i = 0; i + 1 < lv.size(); ++i) {
    ConvSpec s;
    s.op = "conv_t2d_2x2s2";
    s.transposed = true;
    s.label = lv[i + 1].str() + "-" + lv[i].str();
    s.c_in = lv[i + 1].c, s.c_out = lv[i].c;
    s.h = s.w = lv[i + 1].hw;
    s.k = 2, s.stride = 2;
    add(s, small(lv[i + 1]));
  }
}

}  // namespace lk::bench
