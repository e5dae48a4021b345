// Every op on the CUDA backend. Compiled twice (tests/engine/cuda/CMakeLists.txt):
//  * label emu: against the emulated backend (simt/), in CI;
//  * label gpu: against the real backend, skipped when no GPU is present.
// Checks: each op of the op table (tests/support/op_table.h) on each of its
// PyTorch fixtures on the device, with both CUDA variants (ours, and cuDNN /
// the direct kernel), one test case per op ("cuda golden <op>"); the fused LKA
// gate, and the three small networks forward+backward on the device against
// the CPU backend with the same weights.
#include <catch2/catch.hpp>
#include <algorithm>
#include <filesystem>

#include "tests/engine/cuda/cuda_device.h"
#include "engine/optim.h"
#include "engine/safetensors.h"
#include "model/loss.h"
#include "model/networks.h"
#include "tests/support/harness.h"
#include "tests/support/op_tests.h"

using namespace lk;
using namespace lk::test;

namespace {

using lk::test::have_device;
using lk::test::kCuda;

// The op's tolerance on this build's device: a GPU's (label gpu) or the
// emulator's (label emu); docs/GPU.md, "Tolerances".
double device_tol(const Tolerance& t) {
#if defined(LKASEG_HAVE_CUDA)
  return t.gpu;
#else
  return t.cuda;
#endif
}

void run_fixture(const OpEntry& op, const SafeTensors& st) {
  Named in;
  std::vector<std::string> diff;
  for (const auto& [name, t] : st.tensors) {
    if (!fixture_input(name)) continue;
    Tensor x = (t.dtype() == DType::I32 ? t : t.to(DType::F32)).to(kCuda);
    if (st.has("grad_" + name)) {
      x.set_requires_grad(true);
      diff.push_back(name);
    }
    in[name] = x;
  }
  const Tensor out = op.golden(in, st.metadata);
  REQUIRE(out.device() == kCuda);
  CHECK(scaled_error(out, st.get("out")) <= device_tol(op.tol));
  for (const auto& [name, t] : st.tensors) {
    if (name == "out" || fixture_input(name) || name.rfind("grad_", 0) == 0) continue;
    INFO("extra output " << name);
    REQUIRE(in.count(name) == 1);
    CHECK(scaled_error(in[name], t) <= device_tol(op.tol));
  }
  backward(out, st.get("grad_out").to(DType::F32).to(kCuda));
  for (const std::string& name : diff) {
    INFO("gradient of " << name);
    REQUIRE(in[name].grad().defined());
    CHECK(scaled_error(in[name].grad(), st.get("grad_" + name)) <= device_tol(op.tol));
  }
}

void cuda_golden(const OpEntry& op) {
  REQUIRE(std::filesystem::exists(fixture_path(op.fixtures.front())));
  if (!have_device()) return;
  for (KernelVariant v : backend(kCuda).variants()) {
    VariantScope scope(backend(kCuda), v);
    for (const std::string& f : op.fixtures) {
      INFO(f << " (" << variant_name(v) << ")");
      run_fixture(op, load_safetensors(fixture_path(f)));
    }
  }
}

[[maybe_unused]] const bool registered =
    register_op_tests("cuda golden", "[cuda][golden]", [](const OpEntry& e) { return !e.fixtures.empty(); },
                      cuda_golden);

}  // namespace

TEST_CASE("the fused LKA gate on CUDA matches the CPU, with both variants", "[cuda]") {
  if (!have_device()) return;
  const auto variant = GENERATE(KernelVariant::Fast, KernelVariant::Cudnn);
  VariantScope scope(backend(kCuda), variant);
  for (bool training : {true, false}) {
    INFO((training ? "training" : "evaluation") << (variant == KernelVariant::Fast ? ", fused" : ", composed"));
    const Shape s{3, 17, 13, 11};
    std::vector<Tensor> host = {randn(s, 1, DType::F32), randn(s, 2, DType::F32, 2.0), randn({17}, 3, DType::F32),
                                randn({17}, 4, DType::F32), randn({17}, 5, DType::F32, 0.1),
                                uniform({17}, 6, 0.5, 1.5, DType::F32)};
    std::vector<Tensor> dev;
    for (size_t i = 0; i < host.size(); ++i) {
      dev.push_back(host[i].to(kCuda));
      if (i < 4) host[i].set_requires_grad(true), dev[i].set_requires_grad(true);
    }
    const Tensor yc = lka_gate(host[0], host[1], host[2], host[3], host[4], host[5], training);
    const Tensor yg = lka_gate(dev[0], dev[1], dev[2], dev[3], dev[4], dev[5], training);
    CHECK(scaled_error(yg, yc) <= 1e-5);
    CHECK(scaled_error(dev[4], host[4]) <= 1e-5);
    CHECK(scaled_error(dev[5], host[5]) <= 1e-5);
    const Tensor g = randn(s, 7, DType::F32);
    backward(yc, g);
    backward(yg, g.to(kCuda));
    for (int i = 0; i < 4; ++i) {
      INFO("gradient of input " << i);
      CHECK(scaled_error(dev[i].grad(), host[i].grad()) <= 1e-4);
    }
  }
}

TEST_CASE("the three networks forward+backward on CUDA match the CPU backend", "[cuda][model]") {
  if (!have_device()) return;
  for (model::Arch arch : {model::Arch::ResSELKAUNet, model::Arch::UNet, model::Arch::AttentionUNet}) {
    INFO(model::arch_name(arch));
    model::NetConfig c;
    c.arch = arch;
    c.widths = {4, 8, 8, 16};  // small: the emulator runs every CUDA thread on the CPU
    c.seed = 11;
    model::SegNet cpu_net(c), gpu_net(c);  // same seed: same initial weights
    gpu_net.to_device(kCuda);
    const Tensor x = randn({2, 4, 16, 16}, 3, DType::F32);
    const Tensor y = random_labels({2, 16, 16}, 4, 4);
    const model::LossTerms lc = model::deep_supervision_loss(cpu_net.forward(x), y);
    const model::LossTerms lg = model::deep_supervision_loss(gpu_net.forward(x.to(kCuda)), y.to(kCuda));
    CHECK(lg.total.item() == Approx(lc.total.item()).epsilon(1e-4));
    backward(lc.total);
    backward(lg.total);
    const auto pc = cpu_net.named_parameters(), pg = gpu_net.named_parameters();
    REQUIRE(pc.size() == pg.size());
    // Scale floor: 1e-2 of the network's largest gradient (biases before a
    // training-mode BN have a true gradient of 0: pure rounding noise). The
    // limit: a convolution's on this device (on a GPU, cuDNN's algorithms
    // dominate the difference; docs/GPU.md).
    const double grad_tol = std::max(1e-4, device_tol(find_op("conv2d")->tol));
    double global = 0;
    for (const auto& [n, t] : pc)
      for (double v : t.grad().to_vector()) global = std::max(global, std::abs(v));
    for (size_t i = 0; i < pc.size(); ++i) {
      INFO("gradient of " << pc[i].first);
      REQUIRE(pg[i].second.grad().defined());
      CHECK(scaled_error(pg[i].second.grad(), pc[i].second.grad(), 1e-2 * global) <= grad_tol);
    }
    for (const auto& [n, t] : gpu_net.named_buffers()) {
      if (t.dtype() == DType::I32) continue;
      for (const auto& [m, u] : cpu_net.named_buffers())
        if (m == n) CHECK(scaled_error(t, u) <= 1e-4);
    }
    // Two AdamW steps (one multi-tensor launch each on CUDA) keep them together.
    AdamW oc(cpu_net.parameters(), {.lr = 1e-3}), og(gpu_net.parameters(), {.lr = 1e-3});
    oc.step();
    og.step();
    for (int s = 0; s < 1; ++s) {
      cpu_net.zero_grad();
      gpu_net.zero_grad();
      const Tensor a = model::deep_supervision_loss(cpu_net.forward(x), y).total;
      const Tensor b = model::deep_supervision_loss(gpu_net.forward(x.to(kCuda)), y.to(kCuda)).total;
      CHECK(b.item() == Approx(a.item()).epsilon(1e-3));
      backward(a);
      backward(b);
      oc.step();
      og.step();
    }
    for (size_t i = 0; i < pc.size(); ++i) {
      INFO("weights after 2 AdamW steps: " << pc[i].first);
      CHECK(scaled_error(pg[i].second, pc[i].second) <= 1e-3);
    }
  }
}

TEST_CASE("a label outside [0, C) on CUDA is reported at the next wait for the device, naming op and label", "[cuda]") {
  if (!have_device()) return;
  const Tensor logits = randn({2, 3, 4, 4}, 1, DType::F32).to(kCuda);
  const Tensor w = Tensor::full({3}, 1.0).to(kCuda);
  std::vector<int32_t> labels(2 * 16, 1);
  const Tensor good = Tensor::from_labels(labels, {2, 4, 4}).to(kCuda);
  labels[21] = 7;
  const Tensor bad = Tensor::from_labels(labels, {2, 4, 4}).to(kCuda);
  // The op itself does not wait: the error surfaces at the next read.
  const Tensor ce = cross_entropy(logits, bad, w);
  CHECK_THROWS_WITH(ce.item(), Catch::Contains("cross_entropy: label 7 at flat index 21 is outside [0, 3)"));
  // Reported once: the record is clear again.
  CHECK(std::isfinite(cross_entropy(logits, good, w).item()));
  const Tensor tv = tversky_loss(softmax(logits), bad);
  CHECK_THROWS_WITH(backend(kCuda).synchronize(), Catch::Contains("tversky: label 7 at flat index 21"));
  CHECK(std::isfinite(tversky_loss(softmax(logits), good).item()));
  // Two bad calls: the first is the one reported.
  labels[21] = 1, labels[3] = -2;
  const Tensor bad2 = Tensor::from_labels(labels, {2, 4, 4}).to(kCuda);
  cross_entropy(logits, bad2, w);
  cross_entropy(logits, bad, w);
  CHECK_THROWS_WITH(backend(kCuda).synchronize(), Catch::Contains("label -2 at flat index 3"));
}

TEST_CASE("the loss meter keeps the losses on the device and reads only when asked", "[cuda]") {
  if (!have_device()) return;
  model::LossMeter m;
  CHECK(m.take().empty());
  std::vector<double> want;
  for (int i = 0; i < 70; ++i) {  // more than one buffer of slots
    want.push_back(0.25 * i);
    m.add(Tensor::full({1}, 0.25 * i).to(kCuda));
  }
  CHECK(m.count() == 70);
  CHECK(m.take() == want);
  CHECK(m.count() == 0);
  m.add(Tensor::full({1}, 1.0).to(kCuda));
  CHECK(m.take() == std::vector<double>{1.0});  // anew
  CHECK_THROWS_WITH(m.add(Tensor::full({2}, 1.0).to(kCuda)), Catch::Contains("one-element"));
}
