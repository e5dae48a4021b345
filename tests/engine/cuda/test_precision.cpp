// Mixed precision on the CUDA backend (emulated under label emu, real under
// label gpu): a network trained a few AdamW steps with bfloat16 / float16
// activations tracks the float32 run; the float16 loss scaler unscales
// exactly, and skips a step whose scaled gradients overflow; the CPU backend
// refuses reduced-precision activations instead of computing in float32.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <tuple>
#include <string>

#include "engine/loss_scaler.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "model/loss.h"
#include "model/networks.h"
#include "tests/engine/cuda/cuda_device.h"
#include "tests/support/harness.h"

using namespace lk;
using namespace lk::test;

namespace {

model::NetConfig small_net() {
  model::NetConfig c;
  c.widths = {4, 8};  // two levels of 8x8 and 4x4: the emulator runs every CUDA thread on the CPU
  c.deep_supervision = false;
  c.seed = 5;
  return c;
}

struct Run {
  std::vector<double> losses;
  std::vector<Tensor> grads;  // of the first step, on the host
  int64_t skipped = 0;
};

// The loss of `losses` forward passes at `precision` on the same batch from
// the same weights, an AdamW step after each but the last.
Run train(DType precision, int losses) {
  model::SegNet net(small_net());
  net.set_precision(precision);
  net.to_device(kCuda);
  const Tensor x = randn({2, 4, 8, 8}, 3, DType::F32).to(kCuda);
  const Tensor y = random_labels({2, 8, 8}, 4, 4).to(kCuda);
  AdamW opt(net.parameters(), {.lr = 1e-3});
  LossScaler scaler(precision == DType::F16);
  Run r;
  for (int s = 0; s < losses; ++s) {
    const Tensor loss = model::deep_supervision_loss(net.forward(x), y).total;
    REQUIRE(loss.dtype() == DType::F32);
    r.losses.push_back(loss.item());
    if (s + 1 == losses) break;
    opt.zero_grad();
    scaler.backward(loss);
    const bool finite = scaler.unscale(net.parameters());
    if (s == 0)
      for (const Tensor& p : net.parameters()) {
        REQUIRE(p.dtype() == DType::F32);  // master weights and their gradients stay float32
        r.grads.push_back(p.grad().to(cpu_device()));
      }
    if (finite) opt.step();
  }
  r.skipped = scaler.skipped();
  return r;
}

}  // namespace

// Tolerances (measured on the emulator 2026-12-07: loss within 2.0e-4 /
// 2.3e-5 relative, gradient cosine 0.997 / 0.998 for bf16 / fp16): the loss
// within 1e-3 (relative) of float32's before and after an AdamW step (lr
// 1e-3); the first step's weight gradients, all parameters as one vector,
// at a cosine of at least 0.95 (bf16) / 0.99 (fp16) to float32's (single gradients of biases
// before a training-mode BN are sums that cancel to 0 and keep only noise).
TEST_CASE("bf16 and fp16 training steps track fp32 on CUDA", "[cuda][precision]") {
  if (!have_device()) return;
  const Run f32 = train(DType::F32, 2);
  for (auto [precision, loss_tol, cos_min] : {std::tuple{DType::BF16, 1e-3, 0.95}, {DType::F16, 1e-3, 0.99}}) {
    INFO(dtype_name(precision));
    const Run r = train(precision, 2);
    CHECK(r.skipped == 0);
    double dot = 0, n1 = 0, n2 = 0;
    for (size_t i = 0; i < r.grads.size(); ++i) {
      const std::vector<double> a = r.grads[i].to_vector(), b = f32.grads[i].to_vector();
      for (size_t k = 0; k < a.size(); ++k) dot += a[k] * b[k], n1 += a[k] * a[k], n2 += b[k] * b[k];
    }
    const double cosine = dot / std::sqrt(n1 * n2);
    INFO("loss " << r.losses[0] << ", " << r.losses[1] << " (float32 " << f32.losses[0] << ", " << f32.losses[1]
                 << "); gradient cosine " << cosine);
    for (size_t s = 0; s < r.losses.size(); ++s)
      CHECK(std::abs(r.losses[s] - f32.losses[s]) <= loss_tol * std::abs(f32.losses[s]));
    CHECK(r.losses[0] != f32.losses[0]);  // really computed in the reduced type
    CHECK(cosine >= cos_min);
    CHECK(cosine < 1.0);
  }
}

// One op at 16-bit activations against the same op in float32 on the same
// backend: out = cast(op(cast(x)), float32), backward from a random dy; the
// output and the float32 gradients of x and of the float32 parameters. On a
// GPU this runs cuDNN's 16-bit convolution plans; under the emulator the
// direct kernel on float32 twins; pooling, upsampling and concat natively.
// Tolerance (value-scaled): a few roundings of the inputs, the weights
// (cuDNN) and the output: 2^-6 (bf16), 2^-9 (fp16) (emulator 2026-12-07:
// at most 5.1e-3 / 6.2e-4); a wrong layout, a lost bias or gradient is off
// by O(1).
TEST_CASE("convolutions, pooling, upsampling and concat in bf16 and fp16 match float32 on CUDA",
          "[cuda][precision]") {
  if (!have_device()) return;
  using Op = std::function<Tensor(const Tensor& x, const std::vector<Tensor>& p)>;
  const Tensor w3 = randn({6, 4, 3, 3}, 11, DType::F32, 0.3), b6 = randn({6}, 12, DType::F32),
               wt = randn({4, 3, 2, 2}, 13, DType::F32, 0.5), b3 = randn({3}, 14, DType::F32);
  const std::vector<std::tuple<const char*, Op, std::vector<Tensor>>> ops = {
      {"conv2d 3x3", [](const Tensor& x, const std::vector<Tensor>& p) { return conv2d(x, p[0], p[1], {.padding = 1}); },
       {w3, b6}},
      {"conv_transpose2d", [](const Tensor& x, const std::vector<Tensor>& p) { return conv_transpose2d(x, p[0], p[1]); },
       {wt, b3}},
      {"max_pool2d", [](const Tensor& x, const std::vector<Tensor>&) { return max_pool2d(x); }, {}},
      {"global_avg_pool", [](const Tensor& x, const std::vector<Tensor>&) { return global_avg_pool(x); }, {}},
      {"upsample_bilinear", [](const Tensor& x, const std::vector<Tensor>&) { return upsample_bilinear(x, 2); }, {}},
      {"concat", [](const Tensor& x, const std::vector<Tensor>&) { return concat({x, mul(x, x)}); }, {}},
  };
  const Tensor x0 = randn({2, 4, 6, 6}, 15, DType::F32);
  for (const auto& [name, op, params0] : ops) {
    // float32 first, then each 16-bit type, on fresh leaves.
    std::vector<Tensor> ref_out, ref_grads;
    for (DType t : {DType::F32, DType::BF16, DType::F16}) {
      INFO(name << " in " << dtype_name(t));
      Tensor x = x0.to(kCuda);
      x.set_requires_grad(true);
      std::vector<Tensor> params;
      for (const Tensor& p0 : params0) {
        params.push_back(p0.to(kCuda));
        params.back().set_requires_grad(true);
      }
      const Tensor out = cast(op(cast(x, t), params), DType::F32);
      backward(out, randn(out.shape(), 16, DType::F32).to(kCuda));
      std::vector<Tensor> grads{x.grad()};
      for (const Tensor& p : params) grads.push_back(p.grad());
      if (t == DType::F32) {
        ref_out = {out.detach()};
        ref_grads = grads;
        continue;
      }
      const double tol = t == DType::BF16 ? 1.0 / 64 : 1.0 / 512;
      CHECK(scaled_error(out, ref_out[0]) <= tol);
      for (size_t i = 0; i < grads.size(); ++i) {
        INFO("gradient " << i << " (0: x, then the parameters)");
        REQUIRE(grads[i].defined());
        REQUIRE(grads[i].dtype() == DType::F32);
        CHECK(scaled_error(grads[i], ref_grads[i]) <= tol);
      }
    }
  }
}

TEST_CASE("the loss scaler unscales gradients and skips an overflowing fp16 step", "[cuda][precision]") {
  if (!have_device()) return;
  const Tensor x = randn({2, 4, 8, 8}, 3, DType::F32).to(kCuda);
  const Tensor y = random_labels({2, 8, 8}, 4, 4).to(kCuda);

  // float32 (on the CPU: the same code): backward from loss * 1024 then
  // / 1024 = the plain gradients.
  model::SegNet net(small_net());
  const Tensor xc = x.to(cpu_device()), yc = y.to(cpu_device());
  backward(model::deep_supervision_loss(net.forward(xc), yc).total);
  std::vector<Tensor> plain;
  for (const Tensor& p : net.parameters()) plain.push_back(p.grad().to(cpu_device()));
  net.zero_grad();
  LossScaler s1024(true, {.init_scale = 1024});
  s1024.backward(model::deep_supervision_loss(net.forward(xc), yc).total);
  CHECK(s1024.unscale(net.parameters()));
  const auto params = net.parameters();
  for (size_t i = 0; i < params.size(); ++i) CHECK(scaled_error(params[i].grad(), plain[i]) <= 1e-6);

  // float16 with a scale that overflows 65504 in the logits' gradient: the
  // step is skipped (the caller leaves the weights), the scale halves.
  model::SegNet half(small_net());
  half.set_precision(DType::F16);
  half.to_device(kCuda);
  AdamW opt(half.parameters(), {.lr = 1e-3});
  LossScaler scaler(true, {.init_scale = 1e30});
  const Tensor loss = model::deep_supervision_loss(half.forward(x), y).total;
  scaler.backward(loss);
  CHECK_FALSE(scaler.unscale(half.parameters()));
  CHECK(scaler.skipped() == 1);
  CHECK(scaler.scale() == 5e29);

  // Disabled (float32, bfloat16): scale 1, nothing skipped.
  LossScaler off(false);
  CHECK(off.scale() == 1.0);
  CHECK(off.unscale(half.parameters()));
  CHECK(off.skipped() == 0);
}

TEST_CASE("the CPU backend refuses bf16 and fp16 activations", "[precision]") {
  for (DType t : {DType::BF16, DType::F16}) {
    model::SegNet net(small_net());
    net.set_precision(t);
    try {
      net.forward(randn({1, 4, 8, 8}, 3, DType::F32));
      FAIL("a " << dtype_name(t) << " forward ran on the CPU");
    } catch (const std::invalid_argument& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find("CUDA backend") != std::string::npos);
    }
  }
  CHECK_THROWS_AS(parse_precision("fp8"), std::invalid_argument);
  CHECK(parse_precision("bf16") == DType::BF16);
}
