// Data-parallel pieces on the CUDA backend. Compiled twice
// (tests/engine/cuda/CMakeLists.txt): label emu against the emulated
// backend, label gpu against a real device (skipped without one).
//   - Synchronised batch norm (BatchReduceScope with sync_bn: the backend's
//     batch_norm_sums, batch_norm_fwd_stats, batch_norm_bwd_dx) and the loss
//     hooks, on one rank, give what the fused kernels give (float32: 1e-4).
//     Two ranks against one process is tested on the CPU (tests/engine/
//     test_dist.cpp); the reductions themselves do not depend on the device.
//   - With NCCL (gpu label, LKASEG_HAVE_NCCL): the NCCL communicator on one
//     rank (what tools/gpu_check.sh runs on a one-GPU machine): sums,
//     broadcast, GradSync and a short train_fold with sync BN through it.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <optional>
#include <unistd.h>
#include <random>
#include <vector>

#include "engine/dist.h"
#include "engine/ops.h"
#include "tests/engine/cuda/cuda_device.h"
#include "tests/support/harness.h"
#include "tests/support/loader_fixture.h"
#include "tests/support/tiny_run.h"
#include "train/trainer.h"
#ifdef LKASEG_HAVE_NCCL
#include "engine/cuda/dist_nccl.h"
#endif

using namespace lk;
using lk::test::have_device;
using lk::test::kCuda;

namespace {

Tensor random(const Shape& s, unsigned seed, double lo, double hi) { return test::uniform(s, seed, lo, hi, DType::F32); }
double scaled_diff(const Tensor& a, const Tensor& b) { return test::scaled_error(a, b, 1e-300); }

// One rank: every sum is the identity.
std::shared_ptr<const BatchReduce> one_rank(bool sync_bn) {
  return std::make_shared<const BatchReduce>(BatchReduce{[](double*, int64_t) {}, sync_bn});
}

}  // namespace

TEST_CASE("cuda dist: synchronised batch norm, the LKA gate and the losses on one rank are the fused ops",
          "[cuda][dist]") {
  if (!have_device()) return;
  const int64_t N = 4, C = 5, H = 6, W = 7;
  const Tensor x = random({N, C, H, W}, 1, -1, 3), f = random({N, C, H, W}, 2, -2, 2), dy = random({N, C, H, W}, 3, -1, 1);
  const Tensor gamma = random({C}, 4, 0.5, 1.5), beta = random({C}, 5, -1, 1), rm = random({C}, 6, -1, 1),
               rv = random({C}, 7, 0.5, 2);
  for (bool gate : {false, true}) {
    CAPTURE(gate);
    struct Out {
      Tensor y, dx, df, dg, db, rm, rv;
    } out[2];
    for (int synced = 0; synced < 2; ++synced) {
      std::optional<BatchReduceScope> scope;
      if (synced) scope.emplace(one_rank(true));
      Tensor xs = x.to(kCuda).set_requires_grad(true), fs = f.to(kCuda).set_requires_grad(true);
      Tensor g = gamma.to(kCuda).set_requires_grad(true), b = beta.to(kCuda).set_requires_grad(true);
      Out& o = out[synced];
      o.rm = rm.to(kCuda), o.rv = rv.to(kCuda);
      o.y = gate ? lka_gate(xs, fs, g, b, o.rm, o.rv, true) : batch_norm(xs, g, b, o.rm, o.rv, true);
      backward(o.y, dy.to(kCuda));
      o.dx = xs.grad(), o.dg = g.grad(), o.db = b.grad();
      if (gate) o.df = fs.grad();
    }
    CHECK(scaled_diff(out[1].y, out[0].y) <= 1e-4);
    CHECK(scaled_diff(out[1].dx, out[0].dx) <= 1e-4);
    if (gate) CHECK(scaled_diff(out[1].df, out[0].df) <= 1e-4);
    CHECK(scaled_diff(out[1].dg, out[0].dg) <= 1e-4);
    CHECK(scaled_diff(out[1].db, out[0].db) <= 1e-4);
    CHECK(scaled_diff(out[1].rm, out[0].rm) <= 1e-4);
    CHECK(scaled_diff(out[1].rv, out[0].rv) <= 1e-4);
  }
  // The losses: the hook rewrites the weight sum and the soft counts on the device.
  const Tensor logits = random({N, 4, H, W}, 8, -3, 3);
  std::vector<int32_t> lab(static_cast<size_t>(N * H * W));
  for (size_t i = 0; i < lab.size(); ++i) lab[i] = static_cast<int32_t>((i * 5 + i / 7) % 4);
  const Tensor target = Tensor::from_labels(lab, {N, H, W}).to(kCuda);
  const Tensor w = Tensor::from_vector({0.1, 1.0, 1.0, 1.0}, {4}).to(kCuda);
  Tensor loss[2], grad[2];
  for (int synced = 0; synced < 2; ++synced) {
    std::optional<BatchReduceScope> scope;
    if (synced) scope.emplace(one_rank(false));
    Tensor z = logits.to(kCuda).set_requires_grad(true);
    loss[synced] = add(cross_entropy(z, target, w), tversky_loss(softmax(z), target));
    backward(loss[synced]);
    grad[synced] = z.grad();
  }
  CHECK(loss[1].item() == Approx(loss[0].item()).epsilon(1e-6));
  CHECK(scaled_diff(grad[1], grad[0]) <= 1e-5);
}

#ifdef LKASEG_HAVE_NCCL
TEST_CASE("cuda dist: NCCL on one rank sums, broadcasts, syncs gradients and trains", "[cuda][dist][nccl]") {
  if (!have_device()) return;
  const std::unique_ptr<dist::Communicator> nccl = cuda::make_nccl(0, dist::make_single());
  CHECK(nccl->size() == 1);
  CHECK(nccl->describe().find("NCCL") != std::string::npos);
  const Tensor host = random({3, 1000}, 11, -1, 1), t = host.to(kCuda);
  dist::sum(*nccl, t);
  nccl->broadcast(t, 0);
  CHECK(scaled_diff(t, host) == 0);  // one rank: the sum of one
  double v[2] = {1.5, -2};
  nccl->sum_host(v, 2);
  CHECK((v[0] == 1.5 && v[1] == -2));

  // train_fold through the NCCL communicator (one rank, sync BN) against the plain trainer on the GPU.
  test::LoaderFixture fx("nccl_train", 5, 8, 32);
  const std::filesystem::path root =
      std::filesystem::temp_directory_path() / ("lkaseg_nccl_" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  train::TrainConfig c = test::tiny_run(3, 8, 2, 3);
  c.adamw.lr = 1e-4;
  c.device = kCuda;
  const std::vector<std::string> tr{"case_0", "case_1", "case_2", "case_3"}, va{"case_4"};
  const train::TrainResult plain = train::train_fold(c, fx.cache, tr, va, (root / "plain").string());
  c.sync_bn = true;
  train::TrainHooks h;
  h.comm = nccl.get();
  const train::TrainResult viaNccl = train::train_fold(c, fx.cache, tr, va, (root / "nccl").string(), h);
  REQUIRE(viaNccl.log.size() == 3);
  for (size_t e = 0; e < 3; ++e) CHECK(viaNccl.log[e].loss == Approx(plain.log[e].loss).epsilon(1e-4));
  CHECK(viaNccl.log.back().val.has_value());
  std::filesystem::remove_all(root);
}
#endif
