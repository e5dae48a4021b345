// Every op of the op table (tests/support/op_table.h) through the generic
// layer check (harness.h) over its shape grid: batch 1 and 3, odd sizes
// (13x11), channels 1, 3, 17, 64, kernels 1/3/5/7, dilation 1 and 3, stride 1
// and 2; with and without bias; for the ops the CPU has plain-loop kernels of,
// both CPU variants. One test case per op ("gradcheck <op>"), then the
// compositions no single op covers.
#include <catch2/catch.hpp>

#include "tests/support/harness.h"
#include "tests/support/op_tests.h"

using namespace lk;
using namespace lk::test;

namespace {

void gradcheck(const OpEntry& op) {
  const std::vector<LayerCheck> grid = op.gradcheck();
  REQUIRE(!grid.empty());
  const std::vector<KernelVariant> variants =
      op.plain_loops ? backend(cpu_device()).variants() : std::vector<KernelVariant>{KernelVariant::Fast};
  for (KernelVariant v : variants) {
    VariantScope scope(backend(cpu_device()), v);
    for (LayerCheck lc : grid) {
      lc.name += std::string(" (") + variant_name(v) + ")";
      run_layer_check(lc);
    }
  }
}

[[maybe_unused]] const bool registered =
    register_op_tests("gradcheck", "[gradcheck]", [](const OpEntry& e) { return e.gradcheck != nullptr; }, gradcheck);

}  // namespace

TEST_CASE("every op of the table has a gradient check", "[gradcheck]") {
  for (const OpEntry& e : op_table()) {
    INFO(e.name);
    CHECK(e.gradcheck != nullptr);
  }
}

TEST_CASE("gradcheck a loss pair on the same logits (a shared input accumulates)", "[gradcheck][loss]") {
  const Shape s{3, 4, 13, 11};
  TverskyParams full;
  full.detach_alpha = false;
  LayerCheck both;
  both.name = "CE + tversky on the same logits (shared input accumulates)";
  both.inputs = {randn(s, 704, DType::F64, 2.0), random_labels({3, 13, 11}, 4, 700),
                 Tensor::from_vector({0.1, 1.0, 1.0, 1.0}, {4}, DType::F64)};
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

// The gate's own gradient check is the op table's; here it must also equal
// mul(x, sigmoid(batch_norm(f))), values, running stats and gradients.
TEST_CASE("the fused LKA gate equals its composition", "[gradcheck]") {
  uint64_t seed = 950;
  for (bool training : {true, false})
    for (const Shape& s : {Shape{3, 17, 13, 11}, Shape{1, 4, 5, 4}}) {
      INFO((training ? "training " : "evaluation ") << shape_str(s));
      const int64_t c = s[1];
      const std::vector<Tensor> inputs = {randn(s, seed++),          randn(s, seed++, DType::F64, 2.0),
                                          randn({c}, seed++),        randn({c}, seed++),
                                          randn({c}, seed++, DType::F64, 0.1), uniform({c}, seed++, 0.5, 1.5)};
      std::vector<Tensor> a, b;
      for (size_t i = 0; i < inputs.size(); ++i) {
        a.push_back(inputs[i].clone().set_requires_grad(i < 4));
        b.push_back(inputs[i].clone().set_requires_grad(i < 4));
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
