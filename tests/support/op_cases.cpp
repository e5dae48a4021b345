#include "tests/support/op_cases.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "engine/ops.h"
#include "model/loss.h"
#include "tests/support/random.h"

namespace lk::test {

namespace {
constexpr int64_t kF = sizeof(float);  // bytes per element (float and int32 alike)
using Gpu = BenchCase::Gpu;

enum class Pass { Fwd, BwdData, BwdWeight };
const char* pass_name(Pass p) {
  switch (p) {
    case Pass::Fwd: return "fwd";
    case Pass::BwdData: return "bwd_data";
    case Pass::BwdWeight: return "bwd_weight";
  }
  return "?";
}
}  // namespace

ConvGeom ConvShape::geom(int64_t n) const {
  if (transposed) return conv_transpose2d_geom(n, c_in, hw, hw, c_out, k, stride, pad, dil);
  ConvGeom g{};
  g.n = n, g.c_in = c_in, g.h = g.w = hw, g.c_out = c_out, g.kh = g.kw = k;
  g.stride = stride, g.pad = pad, g.dil = dil, g.groups = groups;
  if (!g.finish()) throw std::logic_error("op table: empty convolution");
  return g;
}

Shape ConvShape::y(int64_t n) const {
  const ConvGeom g = geom(n);
  return transposed ? Shape{n, c_out, g.h, g.w} : Shape{n, c_out, g.oh, g.ow};
}

double ConvShape::macs(int64_t n) const {
  const ConvGeom g = geom(n);
  return static_cast<double>(g.n) * g.c_out * (g.c_in / g.groups) * g.oh * g.ow * g.kh * g.kw;
}

double ConvShape::valid_macs(int64_t n) const {
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

ConvShape same_channels(const Level& l, int64_t k, int64_t pad, int64_t dil, bool depthwise) {
  ConvShape s;
  s.c_in = s.c_out = l.c;
  s.hw = l.hw;
  s.k = k, s.pad = pad, s.dil = dil;
  s.groups = depthwise ? l.c : 1;
  return s;
}

std::vector<BenchCase> conv_cases(const std::string& op, const std::string& label, const ConvShape& s,
                                  const ConvBench& how) {
  std::vector<BenchCase> out;
  for (Pass p : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight}) {
    BenchCase d;
    d.name = op + "_" + pass_name(p);
    d.label = label;
    d.variant_ops = {s.transposed ? "conv_transpose2d" : "conv2d"};
    d.cpu = how.cpu, d.gpu = how.gpu, d.cpu_plain_loops = how.cpu_plain_loops, d.gpu_impl = how.gpu_impl;
    d.make = [s, p](int64_t n) {
      Named b;
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
    d.run = [s, p](Backend& be, const Named& b) {
      const ConvGeom g = s.geom(b.at(p == Pass::BwdData ? "dx" : "x").size(0));
      switch (p) {
        case Pass::Fwd:
          if (s.transposed) be.conv_transpose2d_fwd(g, b.at("x"), b.at("w"), b.at("b"), b.at("y"));
          else be.conv2d_fwd(g, b.at("x"), b.at("w"), b.at("b"), b.at("y"));
          break;
        case Pass::BwdData:
          if (s.transposed) be.conv_transpose2d_bwd_data(g, b.at("dy"), b.at("w"), b.at("dx"));
          else be.conv2d_bwd_data(g, b.at("dy"), b.at("w"), b.at("dx"));
          break;
        case Pass::BwdWeight:
          if (s.transposed) be.conv_transpose2d_bwd_weight(g, b.at("dy"), b.at("x"), b.at("dw"), b.at("db"));
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
    out.push_back(std::move(d));
  }
  return out;
}

BenchCase bench_case(std::string name, std::string label, std::string variant_op, BenchCase::Gpu gpu_impl) {
  BenchCase d;
  d.name = std::move(name);
  d.label = std::move(label);
  d.variant_ops = {std::move(variant_op)};
  d.gpu_impl = gpu_impl;
  return d;
}

const std::vector<ConvCase>& conv_grid() {
  static const std::vector<ConvCase> cases = {
      {1, 3, 17, 13, 11, 3, 1, 1, 1, 1},   {3, 17, 3, 13, 11, 3, 2, 1, 1, 1},  {1, 64, 64, 8, 8, 1, 1, 0, 1, 1},
      {3, 1, 3, 13, 11, 5, 1, 2, 1, 1},    {1, 3, 5, 13, 11, 3, 1, 3, 3, 1},   {1, 4, 6, 9, 8, 3, 1, 0, 1, 2},
      {3, 17, 17, 13, 11, 5, 1, 2, 1, 17}, {1, 3, 3, 13, 11, 7, 1, 3, 1, 3},   {1, 17, 17, 15, 13, 7, 1, 9, 3, 17},
      {3, 3, 3, 13, 11, 7, 2, 3, 1, 3},    {1, 64, 64, 9, 9, 7, 1, 9, 3, 64},  {3, 1, 1, 13, 11, 5, 2, 0, 1, 1},
  };
  return cases;
}

std::vector<LayerCheck> conv_checks(const std::string& name, bool (*keep)(const ConvCase&), uint64_t seed) {
  std::vector<LayerCheck> out;
  for (const ConvCase& c : conv_grid()) {
    if (!keep(c)) continue;
    for (bool bias : {true, false}) {
      LayerCheck lc;
      lc.name = name + " n" + std::to_string(c.n) + " c" + std::to_string(c.cin) + "->" + std::to_string(c.cout) +
                " k" + std::to_string(c.k) + " s" + std::to_string(c.stride) + " d" + std::to_string(c.dil) + " g" +
                std::to_string(c.groups) + (bias ? " bias" : "");
      lc.inputs = {randn({c.n, c.cin, c.h, c.w}, seed++),
                   randn({c.cout, c.cin / c.groups, c.k, c.k}, seed++, DType::F64, 0.3)};
      lc.differentiable = {true, true};
      if (bias) {
        lc.inputs.push_back(randn({c.cout}, seed++));
        lc.differentiable.push_back(true);
      }
      const Conv2dOptions o{c.stride, c.pad, c.dil, c.groups};
      lc.fn = [o, bias](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], bias ? in[2] : Tensor(), o); };
      lc.max_probes = c.cin == 64 ? 8 : 16;
      out.push_back(std::move(lc));
    }
  }
  return out;
}

// ------------------------------------------------------------ memory-bound ops and the loss head

// Training batch norm, or the LKA gate y = x * sigmoid(BN(f)) (ours: the
// fused kernel; cuDNN's: its batch norm, sigmoid and multiply composed), at
// level l: forward, and backward from the forward's saved statistics.
std::vector<BenchCase> norm_cases(NormCase kind, const Level& l) {
  const bool gate = kind == NormCase::LkaGate, fused = kind == NormCase::BatchNormRelu;
  auto inputs = [l, gate, fused](int64_t n) {
    Named b{{"x", rand_tensor(act_shape(n, l), 1)},        {"gamma", rand_tensor({l.c}, 2, 0.5f, 1.5f)},
            {"beta", rand_tensor({l.c}, 3)},               {"rm", Tensor::zeros({l.c})},
            {"rv", Tensor::full({l.c}, 1.0)},              {"y", Tensor::zeros(act_shape(n, l))},
            {"mean", Tensor::zeros({l.c})},                {"invstd", Tensor::zeros({l.c})}};
    if (gate) b["f"] = rand_tensor(act_shape(n, l), 5, -2.f, 2.f);
    if (fused) b["r"] = rand_tensor(act_shape(n, l), 6);  // ResSE's tail: relu(BN(x)) + skip
    return b;
  };
  auto fwd = [kind](Backend& be, const Named& b) {
    if (kind == NormCase::LkaGate)
      be.lka_gate_fwd(b.at("x"), b.at("f"), b.at("gamma"), b.at("beta"), b.at("rm"), b.at("rv"), true, 0.1, 1e-5,
                      b.at("y"), b.at("mean"), b.at("invstd"));
    else if (kind == NormCase::BatchNormRelu)
      be.batch_norm_relu_fwd(b.at("x"), b.at("gamma"), b.at("beta"), b.at("rm"), b.at("rv"), true, 0.1, 1e-5,
                             b.at("r"), BnResidual::AfterRelu, b.at("y"), b.at("mean"), b.at("invstd"));
    else
      be.batch_norm_fwd(b.at("x"), b.at("gamma"), b.at("beta"), b.at("rm"), b.at("rv"), true, 0.1, 1e-5, b.at("y"),
                        b.at("mean"), b.at("invstd"));
  };
  const std::string op = gate ? "lka_gate" : fused ? "batch_norm_relu" : "batch_norm";
  const std::vector<std::string> ops =
      gate    ? std::vector<std::string>{"lka_gate", "batch_norm", "activation", "binary"}
      : fused ? std::vector<std::string>{"batch_norm_relu", "batch_norm", "activation", "binary"}
              : std::vector<std::string>{op};
  const int64_t e = shape_numel(act_shape(kBatch, l));

  BenchCase f = bench_case(op + "_train_fwd", l.str(), op, Gpu::OursAndCudnn);
  f.variant_ops = ops;
  f.cpu = key_level(l);
  f.make = inputs;
  f.run = fwd;
  f.outs = {"y", "mean", "invstd", "rm", "rv"};
  f.items = e, f.bytes = (gate || fused ? 3 : 2) * e * kF;

  BenchCase g = bench_case(op + "_train_bwd", l.str(), op, Gpu::OursAndCudnn);
  g.variant_ops = ops;
  g.cpu = key_level(l);
  g.make = [=](int64_t n) {
    Named b = inputs(n);
    fwd(backend(cpu_device()), b);  // the saved statistics
    b["dy"] = rand_tensor(act_shape(n, l), 4);
    b["dx"] = Tensor::zeros(act_shape(n, l));
    b["dgamma"] = Tensor::zeros({l.c});
    b["dbeta"] = Tensor::zeros({l.c});
    if (gate) b["df"] = Tensor::zeros(act_shape(n, l));
    if (fused) b["dr"] = Tensor::zeros(act_shape(n, l));
    return b;
  };
  g.run = [kind](Backend& be, const Named& b) {
    if (kind == NormCase::LkaGate)
      be.lka_gate_bwd(b.at("dy"), b.at("x"), b.at("f"), b.at("gamma"), b.at("beta"), b.at("mean"), b.at("invstd"),
                      true, b.at("dx"), b.at("df"), b.at("dgamma"), b.at("dbeta"));
    else if (kind == NormCase::BatchNormRelu)
      be.batch_norm_relu_bwd(BnResidual::AfterRelu, b.at("dy"), b.at("x"), b.at("y"), b.at("gamma"), b.at("beta"),
                             b.at("mean"), b.at("invstd"), true, b.at("dx"), b.at("dr"), b.at("dgamma"), b.at("dbeta"));
    else
      be.batch_norm_bwd(b.at("dy"), b.at("x"), b.at("gamma"), b.at("mean"), b.at("invstd"), true, b.at("dx"),
                        b.at("dgamma"), b.at("dbeta"));
  };
  g.outs = gate    ? std::vector<std::string>{"dx", "df", "dgamma", "dbeta"}
           : fused ? std::vector<std::string>{"dx", "dr", "dgamma", "dbeta"}
                   : std::vector<std::string>{"dx", "dgamma", "dbeta"};
  // Read dy, x (and f); read and write dx (and df / dr).
  g.items = e, g.bytes = (gate || fused ? 7 : 4) * e * kF;
  return {f, g};
}

std::vector<BenchCase> activation_cases(const std::string& name, Activation a, const Level& l) {
  const int64_t e = shape_numel(act_shape(kBatch, l));
  auto inputs = [l](int64_t n) {
    return Named{{"x", rand_tensor(act_shape(n, l), 1, -4.f, 4.f)}, {"y", Tensor::zeros(act_shape(n, l))}};
  };
  BenchCase f = bench_case(name + "_fwd", l.str(), "activation", Gpu::OursAndCudnn);
  f.cpu = key_level(l);
  f.make = inputs;
  f.run = [a](Backend& be, const Named& b) { be.activation_fwd(a, b.at("x"), b.at("y")); };
  f.outs = {"y"};
  f.items = e, f.bytes = 2 * e * kF;

  BenchCase g = bench_case(name + "_bwd", l.str(), "activation", Gpu::OursAndCudnn);
  g.cpu = key_level(l);
  g.make = [=](int64_t n) {
    Named b = inputs(n);
    backend(cpu_device()).activation_fwd(a, b.at("x"), b.at("y"));
    b["dy"] = rand_tensor(act_shape(n, l), 2);
    b["dx"] = Tensor::zeros(act_shape(n, l));
    return b;
  };
  g.run = [a](Backend& be, const Named& b) { be.activation_bwd(a, b.at("dy"), b.at("y"), b.at("dx")); };
  g.outs = {"dx"};
  g.items = e, g.bytes = 4 * e * kF;
  return {f, g};
}

// The SE rescale x (N, C, H, W) * s (N, C, 1, 1); its backward both gradients.
std::vector<BenchCase> se_mul_cases(const Level& l) {
  const int64_t e = shape_numel(act_shape(kBatch, l)), nc = kBatch * l.c;
  auto sshape = [l](int64_t n) { return Shape{n, l.c, 1, 1}; };
  BenchCase f = bench_case("mul_bcast_nc11_fwd", l.str(), "binary", Gpu::OursAndCudnn);
  f.cpu = key_level(l);
  f.make = [=](int64_t n) {
    return Named{{"x", rand_tensor(act_shape(n, l), 1)},
                 {"s", rand_tensor(sshape(n), 2, 0.f, 1.f)},
                 {"y", Tensor::zeros(act_shape(n, l))}};
  };
  f.run = [](Backend& be, const Named& b) { be.binary_fwd(BinaryOp::Mul, b.at("x"), b.at("s"), b.at("y")); };
  f.outs = {"y"};
  f.items = e, f.bytes = (2 * e + nc) * kF;

  BenchCase g = bench_case("mul_bcast_nc11_bwd", l.str(), "binary", Gpu::OursAndCudnn);
  g.cpu = key_level(l);
  g.make = [=](int64_t n) {
    return Named{{"x", rand_tensor(act_shape(n, l), 1)},  {"s", rand_tensor(sshape(n), 2, 0.f, 1.f)},
                 {"dy", rand_tensor(act_shape(n, l), 3)}, {"dx", Tensor::zeros(act_shape(n, l))},
                 {"ds", Tensor::zeros(sshape(n))}};
  };
  g.run = [](Backend& be, const Named& b) {
    be.binary_bwd(BinaryOp::Mul, b.at("dy"), b.at("s"), b.at("dx"));  // dx += dy * s
    be.binary_bwd(BinaryOp::Mul, b.at("dy"), b.at("x"), b.at("ds"));  // ds += sum_hw dy * x
  };
  g.outs = {"dx", "ds"};
  g.items = e, g.bytes = (4 * e + 3 * nc) * kF;
  return {f, g};
}

std::vector<BenchCase> global_avg_pool_cases(const Level& l) {
  const int64_t e = shape_numel(act_shape(kBatch, l)), nc = kBatch * l.c;
  BenchCase f = bench_case("global_avg_pool_fwd", l.str(), "global_avg_pool", Gpu::OursAndCudnn);
  f.cpu = key_level(l);
  f.make = [l](int64_t n) {
    return Named{{"x", rand_tensor(act_shape(n, l), 1)}, {"y", Tensor::zeros({n, l.c, 1, 1})}};
  };
  f.run = [](Backend& be, const Named& b) { be.global_avg_pool_fwd(b.at("x"), b.at("y")); };
  f.outs = {"y"};
  f.items = e, f.bytes = (e + nc) * kF;

  BenchCase g = bench_case("global_avg_pool_bwd", l.str(), "global_avg_pool", Gpu::OursAndCudnn);
  g.cpu = key_level(l);
  g.make = [l](int64_t n) {
    return Named{{"dy", rand_tensor({n, l.c, 1, 1}, 1)}, {"dx", Tensor::zeros(act_shape(n, l))}};
  };
  g.run = [](Backend& be, const Named& b) { be.global_avg_pool_bwd(b.at("dy"), b.at("dx")); };
  g.outs = {"dx"};
  g.items = e, g.bytes = (2 * e + nc) * kF;
  return {f, g};
}

std::vector<BenchCase> max_pool2d_cases(const Level& l) {
  const int64_t e = shape_numel(act_shape(kBatch, l)), eo = e / 4;
  auto oshape = [l](int64_t n) { return Shape{n, l.c, l.hw / 2, l.hw / 2}; };
  auto inputs = [=](int64_t n) {
    return Named{{"x", rand_tensor(act_shape(n, l), 1)},
                 {"y", Tensor::zeros(oshape(n))},
                 {"idx", Tensor::zeros(oshape(n), DType::I32)}};
  };
  BenchCase f = bench_case("max_pool2d_2x2_fwd", l.str(), "max_pool2d", Gpu::Ours);
  f.cpu = key_level(l);
  f.make = inputs;
  f.run = [](Backend& be, const Named& b) { be.max_pool2d_fwd(2, 2, b.at("x"), b.at("y"), b.at("idx")); };
  f.outs = {"y", "idx"};
  f.items = e, f.bytes = (e + 2 * eo) * kF;

  BenchCase g = bench_case("max_pool2d_2x2_bwd", l.str(), "max_pool2d", Gpu::Ours);
  g.cpu = key_level(l);
  g.make = [=](int64_t n) {
    Named b = inputs(n);
    backend(cpu_device()).max_pool2d_fwd(2, 2, b.at("x"), b.at("y"), b.at("idx"));
    b["dy"] = rand_tensor(oshape(n), 2);
    b["dx"] = Tensor::zeros(act_shape(n, l));
    return b;
  };
  g.run = [](Backend& be, const Named& b) { be.max_pool2d_bwd(2, 2, b.at("dy"), b.at("idx"), b.at("dx")); };
  g.outs = {"dx"};
  g.items = e, g.bytes = (2 * e + 2 * eo) * kF;
  return {f, g};
}

// A decoder skip connection: two (N, C, H, W) blocks into (N, 2C, H, W).
std::vector<BenchCase> concat_cases(const Level& l) {
  auto cat_shape = [l](int64_t n) { return Shape{n, 2 * l.c, l.hw, l.hw}; };
  const int64_t e = shape_numel(cat_shape(kBatch));
  const std::string label = l.str() + "+" + std::to_string(l.c);
  BenchCase f = bench_case("concat_fwd", label, "concat", Gpu::Ours);
  f.cpu = key_level(l);
  f.make = [=](int64_t n) {
    return Named{{"a", rand_tensor(act_shape(n, l), 1)},
                 {"b", rand_tensor(act_shape(n, l), 2)},
                 {"y", Tensor::zeros(cat_shape(n))}};
  };
  f.run = [c = l.c](Backend& be, const Named& b) {
    be.concat_fwd(0, b.at("a"), b.at("y"));
    be.concat_fwd(c, b.at("b"), b.at("y"));
  };
  f.outs = {"y"};
  f.items = e, f.bytes = 2 * e * kF;

  BenchCase g = bench_case("concat_bwd", label, "concat", Gpu::Ours);
  g.cpu = key_level(l);
  g.make = [=](int64_t n) {
    return Named{{"dy", rand_tensor(cat_shape(n), 1)},
                 {"da", Tensor::zeros(act_shape(n, l))},
                 {"db", Tensor::zeros(act_shape(n, l))}};
  };
  g.run = [c = l.c](Backend& be, const Named& b) {
    be.concat_bwd(0, b.at("dy"), b.at("da"));
    be.concat_bwd(c, b.at("dy"), b.at("db"));
  };
  g.outs = {"da", "db"};
  g.items = e, g.bytes = 3 * e * kF;
  return {f, g};
}

// The SE block's two fully connected layers: (N, C) -> (N, hidden) -> (N, C),
// hidden = max(C / 16, 4) as in the default NetConfig.
std::vector<BenchCase> linear_cases(const Level& l) {
  std::vector<BenchCase> out;
  const int64_t hidden = std::max<int64_t>(l.c / 16, 4);
  for (auto [in, o] : {std::pair{l.c, hidden}, std::pair{hidden, l.c}}) {
    const std::string label = std::to_string(in) + "-" + std::to_string(o);
    const double macs = static_cast<double>(kBatch) * in * o;
    BenchCase f = bench_case("linear_se_fwd", label, "linear", Gpu::Ours);
    f.cpu = key_level(l);
    f.make = [=](int64_t n) {
      return Named{{"x", rand_tensor({n, in}, 1)},
                   {"w", rand_tensor({o, in}, 2, -0.2f, 0.2f)},
                   {"b", rand_tensor({o}, 3)},
                   {"y", Tensor::zeros({n, o})}};
    };
    f.run = [](Backend& be, const Named& b) { be.linear_fwd(b.at("x"), b.at("w"), b.at("b"), b.at("y")); };
    f.outs = {"y"};
    f.items = kBatch * o, f.bytes = (kBatch * in + o * in + o + kBatch * o) * kF;
    f.flops = 2 * macs;
    out.push_back(f);

    BenchCase g = bench_case("linear_se_bwd", label, "linear", Gpu::Ours);
    g.cpu = key_level(l);
    g.make = [=](int64_t n) {
      return Named{{"x", rand_tensor({n, in}, 1)},   {"w", rand_tensor({o, in}, 2, -0.2f, 0.2f)},
                   {"dy", rand_tensor({n, o}, 4)},   {"dx", Tensor::zeros({n, in})},
                   {"dw", Tensor::zeros({o, in})},   {"db", Tensor::zeros({o})}};
    };
    g.run = [](Backend& be, const Named& b) {
      be.linear_bwd(b.at("dy"), b.at("x"), b.at("w"), b.at("dx"), b.at("dw"), b.at("db"));
    };
    g.outs = {"dx", "dw", "db"};
    g.items = kBatch * o;
    g.bytes = (kBatch * o + kBatch * in + o * in + 2 * (kBatch * in + o * in + o)) * kF;
    g.flops = 4 * macs;
    out.push_back(g);
  }
  return out;
}

// The deep-supervision logits at hw brought to 128x128 (bilinear).
std::vector<BenchCase> upsample_cases(int64_t hw) {
  const int64_t f = kImage / hw;
  auto in = [hw](int64_t n) { return Shape{n, kClasses, hw, hw}; };
  auto out = [](int64_t n) { return Shape{n, kClasses, kImage, kImage}; };
  const int64_t ei = shape_numel(in(kBatch)), eo = shape_numel(out(kBatch));
  const std::string name = "upsample_bilinear_x" + std::to_string(f), label = Level{hw, kClasses}.str();

  BenchCase fw = bench_case(name + "_fwd", label, "upsample", Gpu::Ours);
  fw.make = [=](int64_t n) { return Named{{"x", rand_tensor(in(n), 1)}, {"y", Tensor::zeros(out(n))}}; };
  fw.run = [f](Backend& be, const Named& b) { be.upsample_fwd(UpsampleMode::Bilinear, f, b.at("x"), b.at("y")); };
  fw.outs = {"y"};
  fw.items = eo, fw.bytes = (ei + eo) * kF;

  BenchCase bw = bench_case(name + "_bwd", label, "upsample", Gpu::Ours);
  bw.make = [=](int64_t n) { return Named{{"dy", rand_tensor(out(n), 1)}, {"dx", Tensor::zeros(in(n))}}; };
  bw.run = [f](Backend& be, const Named& b) { be.upsample_bwd(UpsampleMode::Bilinear, f, b.at("dy"), b.at("dx")); };
  bw.outs = {"dx"};
  bw.items = eo, bw.bytes = (eo + 2 * ei) * kF;
  return {fw, bw};
}

namespace {

// The loss head on (8, 4, 128, 128): logits, their softmax, labels.
Shape head_shape(int64_t n) { return {n, kClasses, kImage, kImage}; }
Shape label_shape(int64_t n) { return {n, kImage, kImage}; }
const std::string& head_label() {
  static const std::string s = Level{kImage, kClasses}.str();
  return s;
}
Tensor head_logits(int64_t n) { return rand_tensor(head_shape(n), 1, -3.f, 3.f); }
Tensor head_probs(int64_t n) {
  Tensor p = Tensor::zeros(head_shape(n));
  backend(cpu_device()).softmax_fwd(head_logits(n), p);
  return p;
}

}  // namespace

std::vector<BenchCase> softmax_cases() {
  const int64_t e = shape_numel(head_shape(kBatch));
  BenchCase f = bench_case("softmax_fwd", head_label(), "softmax", Gpu::OursAndCudnn);
  f.make = [](int64_t n) { return Named{{"x", head_logits(n)}, {"y", Tensor::zeros(head_shape(n))}}; };
  f.run = [](Backend& be, const Named& b) { be.softmax_fwd(b.at("x"), b.at("y")); };
  f.outs = {"y"};
  f.items = e, f.bytes = 2 * e * kF;

  BenchCase g = bench_case("softmax_bwd", head_label(), "softmax", Gpu::OursAndCudnn);
  g.make = [](int64_t n) {
    return Named{{"y", head_probs(n)}, {"dy", rand_tensor(head_shape(n), 2)}, {"dx", Tensor::zeros(head_shape(n))}};
  };
  g.run = [](Backend& be, const Named& b) { be.softmax_bwd(b.at("dy"), b.at("y"), b.at("dx")); };
  g.outs = {"dx"};
  g.items = e, g.bytes = 4 * e * kF;
  return {f, g};
}

// The weighted cross-entropy of the training loss (model::LossConfig's class
// weights), fused with its softmax.
std::vector<BenchCase> cross_entropy_cases() {
  const int64_t e = shape_numel(head_shape(kBatch)), et = shape_numel(label_shape(kBatch));
  auto inputs = [](int64_t n) {
    const model::LossConfig c;
    return Named{{"x", head_logits(n)},
                 {"t", rand_labels(label_shape(n), kClasses, 2)},
                 {"w", Tensor::from_vector(c.class_weights, {kClasses})},
                 {"loss", Tensor::zeros({1})},
                 {"probs", Tensor::zeros(head_shape(n))},
                 {"wsum", Tensor::zeros({1})}};
  };
  auto fwd = [](Backend& be, const Named& b) {
    be.cross_entropy_fwd(b.at("x"), b.at("t"), b.at("w"), b.at("loss"), b.at("probs"), b.at("wsum"));
  };
  BenchCase f = bench_case("cross_entropy_weighted_fwd", head_label(), "cross_entropy", Gpu::Ours);
  f.make = inputs;
  f.run = fwd;
  f.outs = {"loss", "probs", "wsum"};
  f.items = e, f.bytes = (2 * e + et) * kF;

  BenchCase g = bench_case("cross_entropy_weighted_bwd", head_label(), "cross_entropy", Gpu::Ours);
  g.make = [=](int64_t n) {
    Named b = inputs(n);
    fwd(backend(cpu_device()), b);
    b["dloss"] = Tensor::full({1}, 1.0);
    b["dx"] = Tensor::zeros(head_shape(n));
    return b;
  };
  g.run = [](Backend& be, const Named& b) {
    be.cross_entropy_bwd(b.at("dloss"), b.at("probs"), b.at("t"), b.at("w"), b.at("wsum"), b.at("dx"));
  };
  g.outs = {"dx"};
  g.items = e, g.bytes = (3 * e + et) * kF;
  return {f, g};
}

// The adaptive Tversky loss with the training loss's parameters.
std::vector<BenchCase> tversky_cases() {
  const int64_t e = shape_numel(head_shape(kBatch)), et = shape_numel(label_shape(kBatch));
  const TverskyParams tp = model::LossConfig{}.tversky;
  auto inputs = [](int64_t n) {
    return Named{{"p", head_probs(n)},
                 {"t", rand_labels(label_shape(n), kClasses, 2)},
                 {"loss", Tensor::zeros({1})},
                 {"stats", Tensor::zeros({4 * kClasses})}};
  };
  auto fwd = [tp](Backend& be, const Named& b) {
    be.tversky_fwd(tp, b.at("p"), b.at("t"), b.at("loss"), b.at("stats"));
  };
  BenchCase f = bench_case("tversky_fwd", head_label(), "tversky", Gpu::Ours);
  f.make = inputs;
  f.run = fwd;
  f.outs = {"loss", "stats"};
  f.items = e, f.bytes = (e + et) * kF;

  BenchCase g = bench_case("tversky_bwd", head_label(), "tversky", Gpu::Ours);
  g.make = [=](int64_t n) {
    Named b = inputs(n);
    fwd(backend(cpu_device()), b);
    b["dloss"] = Tensor::full({1}, 1.0);
    b["dp"] = Tensor::zeros(head_shape(n));
    return b;
  };
  g.run = [tp](Backend& be, const Named& b) {
    be.tversky_bwd(tp, b.at("dloss"), b.at("t"), b.at("stats"), b.at("dp"));
  };
  g.outs = {"dp"};
  g.items = e, g.bytes = (2 * e + et) * kF;
  return {f, g};
}

void append(std::vector<BenchCase>& to, std::vector<BenchCase> more) {
  for (BenchCase& c : more) to.push_back(std::move(c));
}

}  // namespace lk::test
