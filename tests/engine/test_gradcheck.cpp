// Every op through the generic layer check (harness.h) over a shape grid:
// batch 1 and 3, odd sizes (13x11), channels 1, 3, 17, 64, kernels 1/3/5/7,
// dilation 1 and 3, stride 1 and 2; with and without bias; both the fast and
// the reference CPU kernels.
#include <catch2/catch.hpp>

#include "tests/support/harness.h"

using namespace lk;
using namespace lk::test;

namespace {

struct VariantScope {
  explicit VariantScope(KernelVariant v) : prev(backend(cpu_device()).variant()) { backend(cpu_device()).set_variant(v); }
  ~VariantScope() { backend(cpu_device()).set_variant(prev); }
  KernelVariant prev;
};

struct ConvCase {
  int64_t n, cin, cout, h, w, k, stride, pad, dil, groups;
};

}  // namespace

TEST_CASE("gradcheck conv2d over the shape grid", "[gradcheck][conv]") {
  const ConvCase cases[] = {
      {1, 3, 17, 13, 11, 3, 1, 1, 1, 1},   {3, 17, 3, 13, 11, 3, 2, 1, 1, 1},  {1, 64, 64, 8, 8, 1, 1, 0, 1, 1},
      {3, 1, 3, 13, 11, 5, 1, 2, 1, 1},    {1, 3, 5, 13, 11, 3, 1, 3, 3, 1},   {1, 4, 6, 9, 8, 3, 1, 0, 1, 2},
      {3, 17, 17, 13, 11, 5, 1, 2, 1, 17}, {1, 3, 3, 13, 11, 7, 1, 3, 1, 3},   {1, 17, 17, 15, 13, 7, 1, 9, 3, 17},
      {3, 3, 3, 13, 11, 7, 2, 3, 1, 3},    {1, 64, 64, 9, 9, 7, 1, 9, 3, 64},  {3, 1, 1, 13, 11, 5, 2, 0, 1, 1},
  };
  const auto variant = GENERATE(KernelVariant::Fast, KernelVariant::Reference);
  VariantScope scope(variant);
  uint64_t seed = 100;
  for (const ConvCase& c : cases)
    for (bool bias : {true, false}) {
      LayerCheck lc;
      lc.name = "conv2d n" + std::to_string(c.n) + " c" + std::to_string(c.cin) + "->" + std::to_string(c.cout) +
                " k" + std::to_string(c.k) + " s" + std::to_string(c.stride) + " d" + std::to_string(c.dil) + " g" +
                std::to_string(c.groups) + (bias ? " bias" : "") + (variant == KernelVariant::Fast ? " fast" : " ref");
      lc.inputs = {randn({c.n, c.cin, c.h, c.w}, seed++), randn({c.cout, c.cin / c.groups, c.k, c.k}, seed++, DType::F64, 0.3)};
      lc.differentiable = {true, true};
      if (bias) {
        lc.inputs.push_back(randn({c.cout}, seed++));
        lc.differentiable.push_back(true);
      }
      const Conv2dOptions o{c.stride, c.pad, c.dil, c.groups};
      lc.fn = [o, bias](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], bias ? in[2] : Tensor(), o); };
      lc.max_probes = c.cin == 64 ? 8 : 16;
      run_layer_check(lc);
    }
}

TEST_CASE("gradcheck conv_transpose2d", "[gradcheck][conv]") {
  struct C {
    int64_t n, cin, cout, h, w, k, stride, pad;
  };
  const C cases[] = {{1, 3, 17, 5, 7, 2, 2, 0}, {3, 17, 3, 4, 3, 2, 2, 0}, {1, 64, 32, 3, 3, 2, 2, 0}, {1, 3, 4, 6, 5, 3, 2, 1}};
  const auto variant = GENERATE(KernelVariant::Fast, KernelVariant::Reference);
  VariantScope scope(variant);
  uint64_t seed = 300;
  for (const C& c : cases) {
    LayerCheck lc;
    lc.name = "conv_transpose2d c" + std::to_string(c.cin) + "->" + std::to_string(c.cout) + " k" + std::to_string(c.k);
    lc.inputs = {randn({c.n, c.cin, c.h, c.w}, seed++), randn({c.cin, c.cout, c.k, c.k}, seed++, DType::F64, 0.3),
                 randn({c.cout}, seed++)};
    lc.differentiable = {true, true, true};
    lc.fn = [c](const std::vector<Tensor>& in) { return conv_transpose2d(in[0], in[1], in[2], c.stride, c.pad); };
    lc.max_probes = 12;
    run_layer_check(lc);
  }
}

TEST_CASE("gradcheck batch_norm, training and evaluation", "[gradcheck]") {
  const Shape shapes[] = {{3, 17, 13, 11}, {1, 3, 5, 4}, {1, 64, 4, 4}, {3, 1, 2, 2}};
  uint64_t seed = 400;
  for (bool training : {true, false})
    for (const Shape& s : shapes) {
      const int64_t c = s[1];
      LayerCheck lc;
      lc.name = std::string("batch_norm ") + (training ? "train " : "eval ") + shape_str(s);
      lc.inputs = {randn(s, seed++, DType::F64, 2.0), randn({c}, seed++), randn({c}, seed++), randn({c}, seed++, DType::F64, 0.1),
                   uniform({c}, seed++, 0.5, 1.5)};
      lc.differentiable = {true, true, true, false, false};
      lc.fn = [training](const std::vector<Tensor>& in) {
        return batch_norm(in[0], in[1], in[2], in[3].clone(), in[4].clone(), training, 0.1, 1e-5);
      };
      run_layer_check(lc);
    }
}

TEST_CASE("gradcheck pointwise and broadcasting ops", "[gradcheck]") {
  const Shape x{3, 17, 13, 11};
  uint64_t seed = 500;
  auto unary = [&](const std::string& name, std::function<Tensor(const Tensor&)> f) {
    LayerCheck lc;
    lc.name = name;
    lc.inputs = {randn(x, seed++, DType::F64, 3.0)};
    lc.differentiable = {true};
    lc.fn = [f](const std::vector<Tensor>& in) { return f(in[0]); };
    run_layer_check(lc);
  };
  unary("relu", [](const Tensor& t) { return relu(t); });
  unary("sigmoid", [](const Tensor& t) { return sigmoid(t); });
  unary("scale", [](const Tensor& t) { return scale(t, -0.7); });
  unary("reshape", [](const Tensor& t) { return reshape(t, {3, 17 * 13 * 11}); });

  const Shape others[] = {{3, 17, 13, 11}, {3, 17, 1, 1}, {3, 1, 13, 11}, {1, 17, 1, 1}};
  for (const Shape& o : others)
    for (bool is_mul : {false, true}) {
      LayerCheck lc;
      lc.name = std::string(is_mul ? "mul " : "add ") + shape_str(x) + " by " + shape_str(o);
      lc.inputs = {randn(x, seed++), randn(o, seed++)};
      lc.differentiable = {true, true};
      lc.fn = [is_mul](const std::vector<Tensor>& in) { return is_mul ? mul(in[0], in[1]) : add(in[0], in[1]); };
      run_layer_check(lc);
      // and with the broadcast operand first
      lc.name += " (swapped)";
      lc.fn = [is_mul](const std::vector<Tensor>& in) { return is_mul ? mul(in[1], in[0]) : add(in[1], in[0]); };
      run_layer_check(lc);
    }
}

TEST_CASE("gradcheck pooling, resampling, concat, linear", "[gradcheck]") {
  uint64_t seed = 600;
  auto one = [&](const std::string& name, const Shape& s, std::function<Tensor(const Tensor&)> f) {
    LayerCheck lc;
    lc.name = name + " " + shape_str(s);
    lc.inputs = {randn(s, seed++)};
    lc.differentiable = {true};
    lc.fn = [f](const std::vector<Tensor>& in) { return f(in[0]); };
    run_layer_check(lc);
  };
  for (const Shape& s : {Shape{3, 17, 13, 11}, Shape{1, 64, 8, 8}, Shape{1, 1, 3, 3}}) {
    one("global_avg_pool", s, [](const Tensor& t) { return global_avg_pool(t); });
    one("max_pool2d", s, [](const Tensor& t) { return max_pool2d(t, 2, 2); });
  }
  one("max_pool2d k3 s2", {3, 3, 13, 11}, [](const Tensor& t) { return max_pool2d(t, 3, 2); });
  for (int64_t f : {2, 4, 8}) {
    one("upsample_bilinear x" + std::to_string(f), {3, 3, 5, 4}, [f](const Tensor& t) { return upsample_bilinear(t, f); });
    one("upsample_nearest x" + std::to_string(f), {1, 17, 3, 5}, [f](const Tensor& t) { return upsample_nearest(t, f); });
  }
  one("upsample_bilinear 1x1 plane", {3, 2, 1, 1}, [](const Tensor& t) { return upsample_bilinear(t, 4); });

  LayerCheck cat;
  cat.name = "concat of three";
  cat.inputs = {randn({3, 17, 5, 4}, seed++), randn({3, 1, 5, 4}, seed++), randn({3, 3, 5, 4}, seed++)};
  cat.differentiable = {true, true, true};
  cat.fn = [](const std::vector<Tensor>& in) { return concat(in); };
  run_layer_check(cat);

  LayerCheck lin;
  lin.name = "linear";
  lin.inputs = {randn({3, 17}, seed++), randn({5, 17}, seed++), randn({5}, seed++)};
  lin.differentiable = {true, true, true};
  lin.fn = [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); };
  run_layer_check(lin);
}

TEST_CASE("gradcheck softmax and the losses", "[gradcheck][loss]") {
  uint64_t seed = 700;
  const Shape s{3, 4, 13, 11};
  const Tensor labels = random_labels({3, 13, 11}, 4, seed++);

  LayerCheck sm;
  sm.name = "softmax";
  sm.inputs = {randn(s, seed++, DType::F64, 2.0)};
  sm.differentiable = {true};
  sm.fn = [](const std::vector<Tensor>& in) { return softmax(in[0]); };
  run_layer_check(sm);

  LayerCheck ce;
  ce.name = "weighted cross_entropy";
  ce.inputs = {randn(s, seed++, DType::F64, 2.0), labels, Tensor::from_vector({0.1, 1.0, 1.0, 1.0}, {4}, DType::F64)};
  ce.differentiable = {true, false, false};
  ce.fn = [](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1], in[2]); };
  run_layer_check(ce);

  // The numeric gradient moves alpha too, so the exact check runs with
  // detach_alpha = false; the detached default is checked against PyTorch
  // (golden) and against this one where every alpha is clamped (below).
  LayerCheck tv;
  tv.name = "tversky (alpha not detached) on softmax";
  tv.inputs = {randn(s, seed++, DType::F64, 2.0), labels};
  tv.differentiable = {true, false};
  TverskyParams full;
  full.detach_alpha = false;
  tv.fn = [full](const std::vector<Tensor>& in) { return tversky_loss(softmax(in[0]), in[1], full); };
  run_layer_check(tv);

  LayerCheck tvc = tv;
  tvc.name = "tversky, every alpha clamped: detached == full";
  TverskyParams clamped;  // alpha_min = alpha_max pins alpha, so the detached default is exact
  clamped.alpha_min = clamped.alpha_max = 0.35;
  tvc.fn = [clamped](const std::vector<Tensor>& in) { return tversky_loss(softmax(in[0]), in[1], clamped); };
  run_layer_check(tvc);

  LayerCheck both;
  both.name = "CE + tversky on the same logits (shared input accumulates)";
  both.inputs = {randn(s, seed++, DType::F64, 2.0), labels, Tensor::from_vector({0.1, 1.0, 1.0, 1.0}, {4}, DType::F64)};
  both.differentiable = {true, false, false};
  both.fn = [full](const std::vector<Tensor>& in) {
    return add(cross_entropy(in[0], in[1], in[2]), tversky_loss(softmax(in[0]), in[1], full));
  };
  run_layer_check(both);
}

TEST_CASE("gradcheck composite blocks: SE scaling and a residual", "[gradcheck]") {
  uint64_t seed = 800;
  LayerCheck se;
  se.name = "x * sigmoid(W2 relu(W1 gap(x)))";
  se.inputs = {randn({3, 17, 5, 4}, seed++), randn({4, 17}, seed++), randn({17, 4}, seed++)};
  se.differentiable = {true, true, true};
  se.fn = [](const std::vector<Tensor>& in) {
    const Tensor& x = in[0];
    Tensor z = reshape(global_avg_pool(x), {3, 17});
    Tensor s = sigmoid(linear(relu(linear(z, in[1], Tensor())), in[2], Tensor()));
    return mul(x, reshape(s, {3, 17, 1, 1}));
  };
  run_layer_check(se);

  LayerCheck res;
  res.name = "x + conv(relu(conv(x)))";
  res.inputs = {randn({1, 3, 13, 11}, seed++), randn({3, 3, 3, 3}, seed++, DType::F64, 0.3),
                randn({3, 3, 3, 3}, seed++, DType::F64, 0.3)};
  res.differentiable = {true, true, true};
  res.fn = [](const std::vector<Tensor>& in) {
    const Conv2dOptions o{.padding = 1};
    return add(in[0], conv2d(relu(conv2d(in[0], in[1], Tensor(), o)), in[2], Tensor(), o));
  };
  run_layer_check(res);
}

TEST_CASE("gradcheck the fused LKA gate, and it equals its composition", "[gradcheck]") {
  uint64_t seed = 900;
  for (bool training : {true, false})
    for (const Shape& s : {Shape{3, 17, 13, 11}, Shape{1, 4, 5, 4}}) {
      const int64_t c = s[1];
      LayerCheck lc;
      lc.name = std::string("lka_gate ") + (training ? "train " : "eval ") + shape_str(s);
      lc.inputs = {randn(s, seed++), randn(s, seed++, DType::F64, 2.0), randn({c}, seed++), randn({c}, seed++),
                   randn({c}, seed++, DType::F64, 0.1), uniform({c}, seed++, 0.5, 1.5)};
      lc.differentiable = {true, true, true, true, false, false};
      lc.fn = [training](const std::vector<Tensor>& in) {
        return lka_gate(in[0], in[1], in[2], in[3], in[4].clone(), in[5].clone(), training);
      };
      run_layer_check(lc);

      // Same values and gradients as mul(x, sigmoid(batch_norm(f))).
      std::vector<Tensor> a, b;
      for (size_t i = 0; i < lc.inputs.size(); ++i) {
        a.push_back(lc.inputs[i].clone().set_requires_grad(lc.differentiable[i]));
        b.push_back(lc.inputs[i].clone().set_requires_grad(lc.differentiable[i]));
      }
      const Tensor fused = lka_gate(a[0], a[1], a[2], a[3], a[4], a[5], training);
      const Tensor plain = mul(b[0], sigmoid(batch_norm(b[1], b[2], b[3], b[4], b[5], training)));
      CHECK(scaled_error(fused, plain) < 1e-12);
      CHECK(scaled_error(a[4], b[4]) < 1e-12);  // running stats updated alike
      const Tensor g = randn(s, seed++);
      backward(fused, g);
      backward(plain, g);
      for (int i : {0, 1, 2, 3}) CHECK(scaled_error(a[i].grad(), b[i].grad()) < 1e-10);
    }
}
