// THE op table: one entry per op (op_table.h says who reads it). An entry
// holds the op's fixtures and how to run one, its tolerances, its gradient
// check grid and its benchmark cases at the paper model's shapes (built by
// op_cases.cpp).
#include "tests/support/op_table.h"

#include <utility>

#include "engine/ops.h"
#include "tests/support/op_cases.h"
#include "tests/support/random.h"

// An entry names only the fields it sets (designated initializers); the
// others keep their defaults, which GCC would otherwise warn about.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace lk::test {

namespace {

using Gpu = BenchCase::Gpu;

int64_t mi(const Meta& m, const char* k) { return std::stoll(m.at(k)); }
double md(const Meta& m, const char* k) { return std::stod(m.at(k)); }

Tensor golden_conv2d(Named& in, const Meta& m) {
  return conv2d(in["x"], in["weight"], in["bias"],
                {mi(m, "stride"), mi(m, "padding"), mi(m, "dilation"), mi(m, "groups")});
}

// One input x of shape s, differentiable, through f.
LayerCheck unary_check(const std::string& name, const Shape& s, uint64_t seed, double scale,
                       std::function<Tensor(const Tensor&)> f) {
  LayerCheck lc;
  lc.name = name + " " + shape_str(s);
  lc.inputs = {randn(s, seed, DType::F64, scale)};
  lc.differentiable = {true};
  lc.fn = [f](const std::vector<Tensor>& in) { return f(in[0]); };
  return lc;
}

// a op b for b of every broadcast shape, and b op a.
std::vector<LayerCheck> broadcast_checks(const std::string& name, Tensor (*op)(const Tensor&, const Tensor&),
                                         uint64_t seed) {
  const Shape x{3, 17, 13, 11};
  std::vector<LayerCheck> out;
  for (const Shape& o : {Shape{3, 17, 13, 11}, Shape{3, 17, 1, 1}, Shape{3, 1, 13, 11}, Shape{1, 17, 1, 1}}) {
    LayerCheck lc;
    lc.name = name + " " + shape_str(x) + " by " + shape_str(o);
    lc.inputs = {randn(x, seed++), randn(o, seed++)};
    lc.differentiable = {true, true};
    lc.fn = [op](const std::vector<Tensor>& in) { return op(in[0], in[1]); };
    out.push_back(lc);
    lc.name += " (swapped)";
    lc.fn = [op](const std::vector<Tensor>& in) { return op(in[1], in[0]); };
    out.push_back(std::move(lc));
  }
  return out;
}

// ------------------------------------------------------------------ the table

std::vector<OpEntry> make_table() {
  std::vector<OpEntry> t;

  t.push_back({.name = "conv2d",
               .where = "conv2d (groups < C); kernels/onednn_conv.cpp (Fast, float32), kernels/conv2d.cpp "
                        "(im2col + OpenBLAS: Im2colBlas and fallback, *_ref), "
                        "kernels/cuda/conv2d_direct.cu (emulator), engine/cuda/cudnn_conv.cpp",
               .fixtures = {"conv2d_1x1", "conv2d_3x3_groups2", "conv2d_3x3_pad1", "conv2d_3x3_stride2_pad1"},
               .golden = golden_conv2d,
               .tol = {.gpu = 5e-4},  // cuDNN: Winograd/FFT/implicit-GEMM orders (docs/GPU.md)
               .plain_loops = true,
               .gradcheck = [] { return conv_checks("conv2d", [](const ConvCase& c) { return !c.depthwise(); }, 100); },
               .bench = [] {
                 std::vector<BenchCase> b;
                 // The dense plain loops are timed where they finish quickly.
                 for (const Level& l : all_levels())
                   append(b, conv_cases("conv2d_3x3", l.str(), same_channels(l, 3, 1, 1, false),
                                        {.cpu_plain_loops = l.hw <= 16, .gpu_impl = Gpu::CudnnOnly}));
                 for (const Level& l : all_levels())
                   append(b, conv_cases("conv2d_1x1", l.str(), same_channels(l, 1, 0, 1, false),
                                        {.cpu_plain_loops = l.hw <= 16, .gpu_impl = Gpu::CudnnOnly}));
                 return b;
               }});

  t.push_back({.name = "depthwise_conv2d",
               .where = "conv2d (groups == C_in == C_out); kernels/depthwise_conv2d.cpp, kernels/conv2d.cpp (*_ref), "
                        "kernels/cuda/depthwise_conv2d.cu, engine/cuda/cudnn_conv.cpp (grouped)",
               .fixtures = {"depthwise_conv2d_5x5_pad2", "depthwise_conv2d_7x7_dil3_pad9",
                            "depthwise_conv2d_7x7_stride2_pad3"},
               .golden = golden_conv2d,
               .tol = {.gpu = 5e-4},  // cuDNN: Winograd/FFT/implicit-GEMM orders (docs/GPU.md)
               .plain_loops = true,
               .gradcheck = [] {
                 return conv_checks("depthwise_conv2d", [](const ConvCase& c) { return c.depthwise(); }, 200);
               },
               .bench = [] {
                 // The LKA's: 5x5, 7x7 dilation 3 (the paper), 7x7 (lka_dilation 1, the default network).
                 std::vector<BenchCase> b;
                 const ConvBench how{.cpu_plain_loops = true, .gpu_impl = Gpu::OursAndCudnn};
                 for (const Level& l : all_levels())
                   append(b, conv_cases("depthwise_conv2d_5x5", l.str(), same_channels(l, 5, 2, 1, true), how));
                 for (const Level& l : all_levels())
                   append(b, conv_cases("depthwise_conv2d_7x7_dil3", l.str(), same_channels(l, 7, 9, 3, true), how));
                 for (const Level& l : all_levels())
                   append(b, conv_cases("depthwise_conv2d_7x7", l.str(), same_channels(l, 7, 3, 1, true), how));
                 return b;
               }});

  t.push_back({.name = "conv_transpose2d",
               .where = "conv_transpose2d; kernels/conv_transpose2d.cpp (adjoint of conv2d), "
                        "the conv2d kernels on CUDA",
               .fixtures = {"conv_transpose2d_2x2_stride2", "conv_transpose2d_3x3_stride2_pad1"},
               .golden = [](Named& in, const Meta& m) {
                 return conv_transpose2d(in["x"], in["weight"], in["bias"], mi(m, "stride"), mi(m, "padding"));
               },
               .tol = {.gpu = 5e-4},  // cuDNN: Winograd/FFT/implicit-GEMM orders (docs/GPU.md)
               .plain_loops = true,
               .gradcheck = [] {
                 struct C {
                   int64_t n, cin, cout, h, w, k, stride, pad;
                 };
                 std::vector<LayerCheck> out;
                 uint64_t seed = 300;
                 for (const C& c : {C{1, 3, 17, 5, 7, 2, 2, 0}, C{3, 17, 3, 4, 3, 2, 2, 0}, C{1, 64, 32, 3, 3, 2, 2, 0},
                                    C{1, 3, 4, 6, 5, 3, 2, 1}}) {
                   LayerCheck lc;
                   lc.name = "conv_transpose2d c" + std::to_string(c.cin) + "->" + std::to_string(c.cout) + " k" +
                             std::to_string(c.k);
                   lc.inputs = {randn({c.n, c.cin, c.h, c.w}, seed++),
                                randn({c.cin, c.cout, c.k, c.k}, seed++, DType::F64, 0.3), randn({c.cout}, seed++)};
                   lc.differentiable = {true, true, true};
                   lc.fn = [c](const std::vector<Tensor>& in) {
                     return conv_transpose2d(in[0], in[1], in[2], c.stride, c.pad);
                   };
                   lc.max_probes = 12;
                   out.push_back(std::move(lc));
                 }
                 return out;
               },
               .bench = [] {
                 // Decoder upsampling: level i+1 (2C channels) -> level i (C channels).
                 std::vector<BenchCase> b;
                 const auto& lv = all_levels();
                 for (size_t i = 0; i + 1 < lv.size(); ++i) {
                   ConvShape s;
                   s.transposed = true;
                   s.c_in = lv[i + 1].c, s.c_out = lv[i].c, s.hw = lv[i + 1].hw;
                   s.k = 2, s.stride = 2;
                   append(b, conv_cases("conv_transpose2d_2x2_stride2", lv[i + 1].str() + "-" + lv[i].str(), s,
                                        {.cpu_plain_loops = lv[i + 1].hw <= 16, .gpu_impl = Gpu::CudnnOnly}));
                 }
                 return b;
               }});

  t.push_back({.name = "batch_norm",
               .where = "batch_norm; kernels/batch_norm.cpp, kernels/cuda/batch_norm.cu, engine/cuda/cudnn_ops.cpp",
               .fixtures = {"batch_norm_eval", "batch_norm_train", "batch_norm_train_c17"},
               .golden = [](Named& in, const Meta& m) {
                 Tensor y = batch_norm(in["x"], in["weight"], in["bias"], in["running_mean"], in["running_var"],
                                       mi(m, "training") != 0, md(m, "momentum"), md(m, "eps"));
                 in["running_mean_after"] = in["running_mean"];
                 in["running_var_after"] = in["running_var"];
                 return y;
               },
               .gradcheck = [] {
                 std::vector<LayerCheck> out;
                 uint64_t seed = 400;
                 for (bool training : {true, false})
                   for (const Shape& s : {Shape{3, 17, 13, 11}, Shape{1, 3, 5, 4}, Shape{1, 64, 4, 4}, Shape{3, 1, 2, 2}}) {
                     const int64_t c = s[1];
                     LayerCheck lc;
                     lc.name = std::string("batch_norm ") + (training ? "train " : "eval ") + shape_str(s);
                     lc.inputs = {randn(s, seed++, DType::F64, 2.0), randn({c}, seed++), randn({c}, seed++),
                                  randn({c}, seed++, DType::F64, 0.1), uniform({c}, seed++, 0.5, 1.5)};
                     lc.differentiable = {true, true, true, false, false};
                     lc.fn = [training](const std::vector<Tensor>& in) {
                       return batch_norm(in[0], in[1], in[2], in[3].clone(), in[4].clone(), training, 0.1, 1e-5);
                     };
                     out.push_back(std::move(lc));
                   }
                 return out;
               },
               .bench = [] { return at_levels([](const Level& l) { return norm_cases(NormCase::BatchNorm, l); }); }});

  t.push_back({.name = "batch_norm_relu",
               .where = "batch_norm_relu (relu(batch_norm(x)) [+ r], relu(batch_norm(x) + r), fused); "
                        "kernels/batch_norm_relu.cpp, kernels/cuda/batch_norm.cu",
               .fixtures = {"batch_norm_relu_eval", "batch_norm_relu_residual_after_train",
                            "batch_norm_relu_residual_before_eval", "batch_norm_relu_residual_before_train",
                            "batch_norm_relu_train"},
               .golden = [](Named& in, const Meta& m) {
                 const std::string& r = m.at("residual");
                 const BnResidual mode = r == "after_relu"    ? BnResidual::AfterRelu
                                         : r == "before_relu" ? BnResidual::BeforeRelu
                                                              : BnResidual::None;
                 Tensor y = batch_norm_relu(in["x"], in["weight"], in["bias"], in["running_mean"], in["running_var"],
                                            mi(m, "training") != 0, md(m, "momentum"), md(m, "eps"),
                                            mode == BnResidual::None ? Tensor() : in["residual"], mode);
                 in["running_mean_after"] = in["running_mean"];
                 in["running_var_after"] = in["running_var"];
                 return y;
               },
               .gradcheck = [] {
                 // Random inputs: a pre-activation within a probe's reach (~1e-6) of
                 // ReLU's kink is improbable at these sizes (as for relu's check).
                 std::vector<LayerCheck> out;
                 uint64_t seed = 950;
                 for (BnResidual mode : {BnResidual::None, BnResidual::AfterRelu, BnResidual::BeforeRelu})
                   for (bool training : {true, false}) {
                     const Shape s{3, 5, 6, 5};
                     LayerCheck lc;
                     const char* mode_name = mode == BnResidual::None        ? "relu "
                                             : mode == BnResidual::AfterRelu ? "relu+r "
                                                                             : "(+r)relu ";
                     lc.name = std::string("batch_norm_relu ") + mode_name + (training ? "train " : "eval ") +
                               shape_str(s);
                     lc.inputs = {randn(s, seed++, DType::F64, 2.0), randn({5}, seed++), randn({5}, seed++),
                                  randn({5}, seed++, DType::F64, 0.1), uniform({5}, seed++, 0.5, 1.5),
                                  randn(s, seed++)};
                     lc.differentiable = {true, true, true, false, false, mode != BnResidual::None};
                     lc.fn = [training, mode](const std::vector<Tensor>& in) {
                       return batch_norm_relu(in[0], in[1], in[2], in[3].clone(), in[4].clone(), training, 0.1, 1e-5,
                                              mode == BnResidual::None ? Tensor() : in[5], mode);
                     };
                     out.push_back(std::move(lc));
                   }
                 return out;
               },
               .bench = [] { return at_levels([](const Level& l) { return norm_cases(NormCase::BatchNormRelu, l); }); }});

  t.push_back({.name = "lka_gate",
               .where = "lka_gate (x * sigmoid(batch_norm(f)), fused); kernels/lka_gate.cpp, kernels/cuda/lka_gate.cu",
               .gradcheck = [] {
                 std::vector<LayerCheck> out;
                 uint64_t seed = 900;
                 for (bool training : {true, false})
                   for (const Shape& s : {Shape{3, 17, 13, 11}, Shape{1, 4, 5, 4}}) {
                     const int64_t c = s[1];
                     LayerCheck lc;
                     lc.name = std::string("lka_gate ") + (training ? "train " : "eval ") + shape_str(s);
                     lc.inputs = {randn(s, seed++), randn(s, seed++, DType::F64, 2.0), randn({c}, seed++),
                                  randn({c}, seed++), randn({c}, seed++, DType::F64, 0.1), uniform({c}, seed++, 0.5, 1.5)};
                     lc.differentiable = {true, true, true, true, false, false};
                     lc.fn = [training](const std::vector<Tensor>& in) {
                       return lka_gate(in[0], in[1], in[2], in[3], in[4].clone(), in[5].clone(), training);
                     };
                     out.push_back(std::move(lc));
                   }
                 return out;
               },
               .bench = [] { return at_levels([](const Level& l) { return norm_cases(NormCase::LkaGate, l); }); }});

  t.push_back({.name = "relu",
               .where = "relu; kernels/activation.cpp, kernels/cuda/activation.cu, engine/cuda/cudnn_ops.cpp",
               .fixtures = {"relu"},
               .golden = [](Named& in, const Meta&) { return relu(in["x"]); },
               .gradcheck = [] {
                 return std::vector<LayerCheck>{unary_check("relu", {3, 17, 13, 11}, 500, 3.0, relu)};
               },
               .bench = [] {
                 return at_levels([](const Level& l) { return activation_cases("relu", Activation::Relu, l); });
               }});

  t.push_back({.name = "sigmoid",
               .where = "sigmoid; kernels/activation.cpp, kernels/cuda/activation.cu, engine/cuda/cudnn_ops.cpp",
               .fixtures = {"sigmoid", "sigmoid_extreme"},
               .golden = [](Named& in, const Meta&) { return sigmoid(in["x"]); },
               .gradcheck = [] {
                 return std::vector<LayerCheck>{unary_check("sigmoid", {3, 17, 13, 11}, 501, 3.0, sigmoid)};
               },
               .bench = [] {
                 return at_levels([](const Level& l) { return activation_cases("sigmoid", Activation::Sigmoid, l); });
               }});

  t.push_back({.name = "add",
               .where = "add (broadcasting); kernels/binary.cpp, kernels/cuda/binary.cu, engine/cuda/cudnn_ops.cpp",
               .fixtures = {"add_bcast_1c11", "add_bcast_nc11", "add_same_shape"},
               .golden = [](Named& in, const Meta&) { return add(in["a"], in["b"]); },
               .gradcheck = [] { return broadcast_checks("add", add, 510); }});

  t.push_back({.name = "mul",
               .where = "mul (broadcasting); kernels/binary.cpp, kernels/cuda/binary.cu, engine/cuda/cudnn_ops.cpp",
               .fixtures = {"mul_gate_n1hw", "mul_same_shape", "mul_se_nc11"},
               .golden = [](Named& in, const Meta&) { return mul(in["a"], in["b"]); },
               .gradcheck = [] { return broadcast_checks("mul", mul, 520); },
               .bench = [] { return at_levels(se_mul_cases); }});

  t.push_back({.name = "scale",
               .where = "scale; kernels/binary.cpp (axpy), kernels/cuda/binary.cu",
               .gradcheck = [] {
                 return std::vector<LayerCheck>{unary_check("scale by -0.7", {3, 17, 13, 11}, 502, 3.0,
                                                            [](const Tensor& x) { return scale(x, -0.7); })};
               }});

  t.push_back({.name = "reshape",
               .where = "reshape (a view; its gradient is the reshaped gradient)",
               .gradcheck = [] {
                 return std::vector<LayerCheck>{unary_check("reshape", {3, 17, 13, 11}, 503, 3.0, [](const Tensor& x) {
                   return reshape(x, {3, 17 * 13 * 11});
                 })};
               }});

  t.push_back({.name = "global_avg_pool",
               .where = "global_avg_pool; kernels/global_avg_pool.cpp, kernels/cuda/pooling.cu, "
                        "engine/cuda/cudnn_ops.cpp",
               .fixtures = {"global_avg_pool"},
               .golden = [](Named& in, const Meta&) { return global_avg_pool(in["x"]); },
               .gradcheck = [] {
                 std::vector<LayerCheck> out;
                 uint64_t seed = 600;
                 for (const Shape& s : {Shape{3, 17, 13, 11}, Shape{1, 64, 8, 8}, Shape{1, 1, 3, 3}})
                   out.push_back(unary_check("global_avg_pool", s, seed++, 1.0, global_avg_pool));
                 return out;
               },
               .bench = [] { return at_levels(global_avg_pool_cases); }});

  t.push_back({.name = "max_pool2d",
               .where = "max_pool2d; kernels/max_pool2d.cpp, kernels/cuda/pooling.cu",
               .fixtures = {"max_pool2d", "max_pool2d_8x8"},
               .golden = [](Named& in, const Meta& m) { return max_pool2d(in["x"], mi(m, "kernel"), mi(m, "stride")); },
               .gradcheck = [] {
                 std::vector<LayerCheck> out;
                 uint64_t seed = 610;
                 auto k2 = [](const Tensor& x) { return max_pool2d(x, 2, 2); };
                 for (const Shape& s : {Shape{3, 17, 13, 11}, Shape{1, 64, 8, 8}, Shape{1, 1, 3, 3}})
                   out.push_back(unary_check("max_pool2d", s, seed++, 1.0, k2));
                 out.push_back(unary_check("max_pool2d k3 s2", {3, 3, 13, 11}, seed++, 1.0,
                                           [](const Tensor& x) { return max_pool2d(x, 3, 2); }));
                 return out;
               },
               .bench = [] { return at_levels(max_pool2d_cases); }});

  t.push_back({.name = "upsample_bilinear",
               .where = "upsample_bilinear (align_corners=False); kernels/upsample.cpp, kernels/cuda/upsample.cu",
               .fixtures = {"upsample_bilinear_x2", "upsample_bilinear_x4"},
               .golden = [](Named& in, const Meta& m) { return upsample_bilinear(in["x"], mi(m, "scale")); },
               .gradcheck = [] {
                 std::vector<LayerCheck> out;
                 uint64_t seed = 620;
                 for (int64_t f : {2, 4, 8})
                   out.push_back(unary_check("upsample_bilinear x" + std::to_string(f), {3, 3, 5, 4}, seed++, 1.0,
                                             [f](const Tensor& x) { return upsample_bilinear(x, f); }));
                 out.push_back(unary_check("upsample_bilinear x4 of a 1x1 plane", {3, 2, 1, 1}, seed++, 1.0,
                                           [](const Tensor& x) { return upsample_bilinear(x, 4); }));
                 return out;
               },
               .bench = [] {
                 std::vector<BenchCase> b;
                 for (int64_t hw : {64, 32, 16}) append(b, upsample_cases(hw));
                 return b;
               }});

  t.push_back({.name = "upsample_nearest",
               .where = "upsample_nearest; kernels/upsample.cpp, kernels/cuda/upsample.cu",
               .fixtures = {"upsample_nearest_x2"},
               .golden = [](Named& in, const Meta& m) { return upsample_nearest(in["x"], mi(m, "scale")); },
               .gradcheck = [] {
                 std::vector<LayerCheck> out;
                 uint64_t seed = 630;
                 for (int64_t f : {2, 4, 8})
                   out.push_back(unary_check("upsample_nearest x" + std::to_string(f), {1, 17, 3, 5}, seed++, 1.0,
                                             [f](const Tensor& x) { return upsample_nearest(x, f); }));
                 return out;
               }});

  t.push_back({.name = "concat",
               .where = "concat (channels); kernels/concat.cpp, kernels/cuda/concat.cu",
               .fixtures = {"concat"},
               .golden = [](Named& in, const Meta&) { return concat({in["a"], in["b"]}); },
               .gradcheck = [] {
                 LayerCheck cat;
                 cat.name = "concat of three";
                 cat.inputs = {randn({3, 17, 5, 4}, 640), randn({3, 1, 5, 4}, 641), randn({3, 3, 5, 4}, 642)};
                 cat.differentiable = {true, true, true};
                 cat.fn = [](const std::vector<Tensor>& in) { return concat(in); };
                 return std::vector<LayerCheck>{cat};
               },
               .bench = [] { return at_levels(concat_cases); }});

  t.push_back({.name = "linear",
               .where = "linear; kernels/linear.cpp, kernels/cuda/linear.cu",
               .fixtures = {"linear"},
               .golden = [](Named& in, const Meta&) { return linear(in["x"], in["weight"], in["bias"]); },
               .gradcheck = [] {
                 LayerCheck lin;
                 lin.name = "linear";
                 lin.inputs = {randn({3, 17}, 650), randn({5, 17}, 651), randn({5}, 652)};
                 lin.differentiable = {true, true, true};
                 lin.fn = [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); };
                 return std::vector<LayerCheck>{lin};
               },
               .bench = [] { return at_levels(linear_cases); }});

  t.push_back({.name = "softmax",
               .where = "softmax (channels); kernels/softmax.cpp, kernels/cuda/cross_entropy.cu, "
                        "engine/cuda/cudnn_ops.cpp",
               .fixtures = {"softmax"},
               .golden = [](Named& in, const Meta&) { return softmax(in["x"]); },
               .gradcheck = [] {
                 return std::vector<LayerCheck>{unary_check("softmax", {3, 4, 13, 11}, 701, 2.0, softmax)};
               },
               .bench = softmax_cases});

  t.push_back({.name = "cross_entropy",
               .where = "cross_entropy (weighted, softmax fused); kernels/cross_entropy.cpp, "
                        "kernels/cuda/cross_entropy.cu",
               .fixtures = {"cross_entropy", "cross_entropy_n1"},
               .golden = [](Named& in, const Meta&) { return cross_entropy(in["logits"], in["target"], in["class_weight"]); },
               .gradcheck = [] {
                 LayerCheck ce;
                 ce.name = "weighted cross_entropy";
                 ce.inputs = {randn({3, 4, 13, 11}, 702, DType::F64, 2.0), random_labels({3, 13, 11}, 4, 700),
                              Tensor::from_vector({0.1, 1.0, 1.0, 1.0}, {4}, DType::F64)};
                 ce.differentiable = {true, false, false};
                 ce.fn = [](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1], in[2]); };
                 return std::vector<LayerCheck>{ce};
               },
               .bench = cross_entropy_cases});

  t.push_back({.name = "tversky",
               .where = "tversky_loss (adaptive alpha); kernels/tversky.cpp, kernels/cuda/tversky.cu",
               .fixtures = {"tversky", "tversky_absent_class"},
               .golden = [](Named& in, const Meta& m) {
                 TverskyParams p;
                 p.alpha_min = md(m, "alpha_min");
                 p.alpha_max = md(m, "alpha_max");
                 p.eps = md(m, "eps");
                 Tensor stats;
                 Tensor loss = tversky_loss(in["probs"], in["target"], p, &stats);
                 // stats holds TP, FP, FN, alpha per class (kernels/tversky.h).
                 const std::vector<double> v = stats.to_vector();
                 const int64_t c = static_cast<int64_t>(v.size()) / 4;
                 in["alpha"] = Tensor::from_vector({v.begin() + 3 * c, v.end()}, {c}, DType::F64);
                 return loss;
               },
               .gradcheck = [] {
                 // The numeric gradient moves alpha too, so the exact check runs
                 // with detach_alpha = false; the detached default is checked
                 // against PyTorch (golden) and, where every alpha is clamped, here.
                 const Tensor labels = random_labels({3, 13, 11}, 4, 700);
                 TverskyParams full;
                 full.detach_alpha = false;
                 LayerCheck tv;
                 tv.name = "tversky (alpha not detached) on softmax";
                 tv.inputs = {randn({3, 4, 13, 11}, 703, DType::F64, 2.0), labels};
                 tv.differentiable = {true, false};
                 tv.fn = [full](const std::vector<Tensor>& in) { return tversky_loss(softmax(in[0]), in[1], full); };
                 LayerCheck tvc = tv;
                 tvc.name = "tversky, every alpha clamped: detached == full";
                 TverskyParams clamped;  // alpha_min = alpha_max pins alpha, so the detached default is exact
                 clamped.alpha_min = clamped.alpha_max = 0.35;
                 tvc.fn = [clamped](const std::vector<Tensor>& in) {
                   return tversky_loss(softmax(in[0]), in[1], clamped);
                 };
                 return std::vector<LayerCheck>{tv, tvc};
               },
               .bench = tversky_cases});

  t.push_back({.name = "ce_tversky_loss",
               .where = "ce_tversky_loss (one deep-supervision term, fused on CUDA); kernels/loss_terms.cpp, "
                        "kernels/cuda/loss_terms.cu",
               .gradcheck = [] {
                 TverskyParams full;  // alpha moves with the numeric probes (see tversky)
                 full.detach_alpha = false;
                 LayerCheck lc;
                 lc.name = "weighted CE + tversky (alpha not detached) on logits";
                 lc.inputs = {randn({3, 4, 13, 11}, 705, DType::F64, 2.0), random_labels({3, 13, 11}, 4, 706),
                              Tensor::from_vector({0.1, 1.0, 1.0, 1.0}, {4}, DType::F64)};
                 lc.differentiable = {true, false, false};
                 lc.fn = [full](const std::vector<Tensor>& in) { return ce_tversky_loss(in[0], in[1], in[2], full); };
                 return std::vector<LayerCheck>{lc};
               }});

  t.push_back({.name = "weighted_sum",
               .where = "weighted_sum (the deep-supervision total); kernels/loss_terms.cpp, kernels/cuda/loss_terms.cu",
               .gradcheck = [] {
                 LayerCheck ws;
                 ws.name = "weighted sum of three tensors";
                 ws.inputs = {randn({2, 5}, 707), randn({2, 5}, 708), randn({2, 5}, 709)};
                 ws.differentiable = {true, false, true};
                 ws.fn = [](const std::vector<Tensor>& in) { return weighted_sum(in, {1.0, 0.4, -0.3}); };
                 LayerCheck twice = ws;
                 twice.name = "weighted sum with an input used twice";
                 twice.fn = [](const std::vector<Tensor>& in) { return weighted_sum({in[0], in[2], in[0]}, {0.5, 2.0, 0.25}); };
                 return std::vector<LayerCheck>{ws, twice};
               }});

  return t;
}

}  // namespace

const std::vector<OpEntry>& op_table() {
  static const std::vector<OpEntry> table = make_table();
  return table;
}

const OpEntry* find_op(std::string_view name) {
  for (const OpEntry& e : op_table())
    if (e.name == name) return &e;
  return nullptr;
}

bool fixture_input(const std::string& n) {
  return n != "out" && n != "alpha" && n.rfind("grad_", 0) != 0 && n.find("_after") == std::string::npos;
}

}  // namespace lk::test
