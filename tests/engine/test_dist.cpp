// The data-parallel machinery without MPI: two threads as ranks
// (tests/support/thread_comm.h).
//   - The ops' whole-batch hook (BatchReduceScope): batch_norm and lka_gate
//     with sync_bn, cross_entropy and tversky_loss on two ranks at batch 4
//     give what one process gives at batch 8 (float64: to 1e-10), forward
//     and backward, running statistics included.
//   - GradSync: buckets start while the backward runs, in order, and after
//     finish() each rank holds the gradient of the whole batch.
//   - The launcher's environment is read (Open MPI, Slurm, PMI).
//   - PeerWatch reports a neighbour process that dies, naming its rank, and
//     nothing while it lives.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <random>
#include <thread>
#include <vector>

#include "engine/dist.h"
#include "engine/ops.h"
#include "tests/support/harness.h"
#include "tests/support/thread_comm.h"

using namespace lk;
using lk::test::ThreadComm;

namespace {

Tensor random(const Shape& s, unsigned seed, double lo, double hi, DType dt = DType::F64) {
  return test::uniform(s, seed, lo, hi, dt);
}

// Rows [from, from + n) of dim 0, copied.
Tensor rows(const Tensor& t, int64_t from, int64_t n) {
  const std::vector<double> v = t.to_vector();
  const int64_t per = t.numel() / t.size(0);
  Shape s = t.shape();
  s[0] = n;
  return Tensor::from_vector({v.begin() + from * per, v.begin() + (from + n) * per}, s, t.dtype());
}

// max |a - b| / max |b|.
double scaled_diff(const Tensor& a, const Tensor& b) { return test::scaled_error(a, b, 1e-300); }

void on_two_ranks(const std::function<void(int, ThreadComm&)>& body) { test::on_thread_ranks(2, body); }

std::shared_ptr<const BatchReduce> reduce_over(ThreadComm& c, bool sync_bn) {
  return std::make_shared<const BatchReduce>(
      BatchReduce{[&c](double* v, int64_t n) { c.sum_host(v, n); }, sync_bn});
}

constexpr double kTol = 1e-10;

}  // namespace

TEST_CASE("dist: batch_norm and lka_gate with sync_bn over two ranks at batch 4 are one process at batch 8",
          "[dist]") {
  const int64_t N = 8, C = 3, H = 5, W = 4;
  Tensor x = random({N, C, H, W}, 1, -1, 1);
  {  // channel offsets larger than the spread: the variance is not E[x^2]
    std::vector<double> v = x.to_vector();
    for (size_t i = 0; i < v.size(); ++i) v[i] += 3.0 * static_cast<double>((i / (H * W)) % C) - 2.0;
    x = Tensor::from_vector(v, x.shape(), DType::F64);
  }
  const Tensor f = random({N, C, H, W}, 2, -2, 2), dy = random({N, C, H, W}, 3, -1, 1);
  const Tensor gamma = random({C}, 4, 0.5, 1.5), beta = random({C}, 5, -1, 1), rm = random({C}, 6, -1, 1),
               rv = random({C}, 7, 0.5, 2);
  for (bool gate : {false, true}) {
    CAPTURE(gate);
    // One process at batch 8.
    Tensor xr = x.clone().set_requires_grad(true), fr = f.clone().set_requires_grad(true);
    Tensor gr = gamma.clone().set_requires_grad(true), br = beta.clone().set_requires_grad(true);
    const Tensor rmr = rm.clone(), rvr = rv.clone();
    const Tensor yr = gate ? lka_gate(xr, fr, gr, br, rmr, rvr, true) : batch_norm(xr, gr, br, rmr, rvr, true);
    backward(yr, dy);
    // Two ranks at batch 4.
    Tensor y[2], dx[2], df[2], dg[2], db[2], rms[2], rvs[2];
    on_two_ranks([&](int r, ThreadComm& c) {
      const BatchReduceScope scope(reduce_over(c, true));
      Tensor xs = rows(x, 4 * r, 4).set_requires_grad(true), fs = rows(f, 4 * r, 4).set_requires_grad(true);
      Tensor g = gamma.clone().set_requires_grad(true), b = beta.clone().set_requires_grad(true);
      rms[r] = rm.clone(), rvs[r] = rv.clone();
      y[r] = gate ? lka_gate(xs, fs, g, b, rms[r], rvs[r], true) : batch_norm(xs, g, b, rms[r], rvs[r], true);
      backward(y[r], rows(dy, 4 * r, 4));
      dx[r] = xs.grad(), dg[r] = g.grad(), db[r] = b.grad();
      if (gate) df[r] = fs.grad();
    });
    for (int r = 0; r < 2; ++r) {
      CAPTURE(r);
      CHECK(scaled_diff(y[r], rows(yr, 4 * r, 4)) <= kTol);
      CHECK(scaled_diff(dx[r], rows(xr.grad(), 4 * r, 4)) <= kTol);
      if (gate) CHECK(scaled_diff(df[r], rows(fr.grad(), 4 * r, 4)) <= kTol);
      CHECK(scaled_diff(rms[r], rmr) <= kTol);
      CHECK(scaled_diff(rvs[r], rvr) <= kTol);
    }
    // dgamma and dbeta: each rank holds its share; the shares add up.
    const auto sum2 = [](const Tensor& a, const Tensor& b) { return add(a.detach(), b.detach()); };
    CHECK(scaled_diff(sum2(dg[0], dg[1]), gr.grad()) <= kTol);
    CHECK(scaled_diff(sum2(db[0], db[1]), br.grad()) <= kTol);
    CHECK(scaled_diff(dg[0], gr.grad()) > 1e-3);  // a share, not the whole
  }
  SECTION("without sync_bn each rank normalises its own batch") {
    Tensor y0;
    on_two_ranks([&](int r, ThreadComm& c) {
      const BatchReduceScope scope(reduce_over(c, false));
      const Tensor xs = rows(x, 4 * r, 4);
      const Tensor y1 = batch_norm(xs, gamma, beta, rm.clone(), rv.clone(), true);
      if (r == 0) y0 = y1;
    });
    CHECK(scaled_diff(y0, batch_norm(rows(x, 0, 4), gamma, beta, rm.clone(), rv.clone(), true)) == 0);
  }
}

TEST_CASE("dist: cross_entropy and tversky_loss over two ranks normalise by the whole batch", "[dist]") {
  const int64_t N = 8, C = 4, H = 6, W = 6;
  const Tensor logits = random({N, C, H, W}, 11, -3, 3);
  std::vector<int32_t> lab(static_cast<size_t>(N * H * W));
  std::mt19937 rng(12);
  for (size_t i = 0; i < lab.size(); ++i) lab[i] = i < lab.size() / 2 ? static_cast<int32_t>(rng() % 4) : 0;
  const Tensor target = Tensor::from_labels(lab, {N, H, W});
  const Tensor w = Tensor::from_vector({0.1, 1.0, 1.0, 1.0}, {C}, DType::F64);
  const auto loss_of = [&](const Tensor& z, const Tensor& t) {
    return add(cross_entropy(z, t, w), tversky_loss(softmax(z), t));
  };
  Tensor zr = logits.clone().set_requires_grad(true);
  const Tensor lr = loss_of(zr, target);
  backward(lr);
  double l[2];
  Tensor dz[2];
  on_two_ranks([&](int r, ThreadComm& c) {
    const BatchReduceScope scope(reduce_over(c, false));
    Tensor z = rows(logits, 4 * r, 4).set_requires_grad(true);
    const std::vector<int32_t> part(lab.begin() + 4 * r * H * W, lab.begin() + (4 * r + 4) * H * W);
    const Tensor loss = loss_of(z, Tensor::from_labels(part, {4, H, W}));
    backward(loss);
    l[r] = loss.item(), dz[r] = z.grad();
  });
  // The two halves differ (all the tumour is in the first), yet both ranks see the whole batch's loss.
  for (int r = 0; r < 2; ++r) {
    CAPTURE(r);
    CHECK(std::abs(l[r] - lr.item()) <= kTol * std::abs(lr.item()));
    CHECK(scaled_diff(dz[r], rows(zr.grad(), 4 * r, 4)) <= kTol);
  }
}

TEST_CASE("dist: GradSync sums the gradients in buckets started during the backward", "[dist]") {
  // conv -> batch norm -> relu -> conv -> cross-entropy, float32, batch 8 or 2 x 4.
  const int64_t N = 8, C = 4, K = 3, S = 8;
  const Tensor x = random({N, 2, S, S}, 21, -1, 1, DType::F32);
  std::vector<int32_t> lab(static_cast<size_t>(N * S * S));
  for (size_t i = 0; i < lab.size(); ++i) lab[i] = static_cast<int32_t>((i * 7 + i / 13) % K);
  const Tensor target = Tensor::from_labels(lab, {N, S, S});
  const Tensor w = Tensor::from_vector({0.5, 1.0, 1.0}, {K});
  struct Net {  // (no bias before the batch norm: its gradient is 0 up to rounding)
    Tensor w1, g, b, w2, b2, rm, rv;
    std::vector<Tensor> params() const { return {w1, g, b, w2, b2}; }
  };
  const auto make = [&] {
    Net n{random({C, 2, 3, 3}, 22, -0.5, 0.5, DType::F32), random({C}, 24, 0.5, 1.5, DType::F32),         random({C}, 25, -0.1, 0.1, DType::F32),
          random({K, C, 1, 1}, 26, -0.5, 0.5, DType::F32), random({K}, 27, -0.1, 0.1, DType::F32),
          Tensor::zeros({C}),                             Tensor::full({C}, 1.0)};
    for (Tensor* p : {&n.w1, &n.g, &n.b, &n.w2, &n.b2}) p->set_requires_grad(true);
    return n;
  };
  const auto loss_of = [&](const Net& n, const Tensor& in, const Tensor& t) {
    Conv2dOptions pad;
    pad.padding = 1;
    const Tensor h = relu(batch_norm(conv2d(in, n.w1, Tensor(), pad), n.g, n.b, n.rm, n.rv, true));
    return cross_entropy(conv2d(h, n.w2, n.b2), t, w);
  };
  const Net ref = make();
  backward(loss_of(ref, x, target));

  std::vector<Tensor> grads[2];
  int64_t buckets = 0, early = 0, started = 0;
  on_two_ranks([&](int r, ThreadComm& c) {
    const Net n = make();
    dist::GradSync sync(c, n.params(), 64);  // small buckets: several per step
    const std::vector<int32_t> part(lab.begin() + 4 * r * S * S, lab.begin() + (4 * r + 4) * S * S);
    {
      const BatchReduceScope scope(reduce_over(c, true));
      backward(loss_of(n, rows(x, 4 * r, 4), Tensor::from_labels(part, {4, S, S})), {}, false,
               [&](const Tensor& leaf) { sync.ready(leaf); });
    }
    const int64_t before_finish = c.started;
    sync.finish();
    for (const Tensor& p : n.params()) grads[r].push_back(p.grad().clone());
    if (r == 0) buckets = sync.buckets(), early = sync.started_early(), started = before_finish;
  });
  CHECK(buckets >= 3);
  CHECK(early >= 1);                 // the last layer's bucket went before the backward ended
  CHECK(started == early);           // ... in bucket order
  const std::vector<Tensor> want = ref.params();
  for (size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK(scaled_diff(grads[0][i], want[i].grad()) <= 2e-6);
    CHECK(scaled_diff(grads[1][i], grads[0][i]) == 0);  // the same bits on every rank
  }
}

TEST_CASE("dist: the launcher's environment gives the rank, the size and the local rank", "[dist]") {
  const auto with = [](std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (const char* v : {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                          "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
                          "SLURM_TASKS_PER_NODE", "PMI_RANK", "PMI_SIZE"})
      unsetenv(v);
    for (const auto& [k, v] : vars) setenv(k, v, 1);
    return dist::detect_launch();
  };
  dist::Launch l = with({});
  CHECK(l.size == 1);
  CHECK(l.launcher.empty());
  l = with({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
            {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}});
  CHECK((l.rank == 3 && l.size == 4 && l.local_rank == 1 && l.local_size == 2));
  CHECK(l.launcher == "mpirun (Open MPI)");
  l = with({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"}, {"SLURM_TASKS_PER_NODE", "4(x2)"}});
  CHECK((l.rank == 5 && l.size == 8 && l.local_rank == 1 && l.local_size == 4));
  l = with({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}});
  CHECK((l.rank == 1 && l.size == 2 && l.local_size == 1));
  l = with({{"SLURM_PROCID", "2"}, {"SLURM_NTASKS", "2"}});  // a rank outside the size: no launcher
  CHECK(l.size == 1);
  with({});
}

TEST_CASE("dist: PeerWatch names a neighbour that dies, and is silent while it lives", "[dist]") {
  using namespace std::chrono;
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  std::atomic<int> dead_rank{-1}, calls{0};
  {
    dist::PeerWatch w({{3, static_cast<long>(child)}, {5, 0}}, [&](const dist::Peer& p) {
      dead_rank = p.rank;
      ++calls;
    }, milliseconds(10));
    CHECK(w.watched() == 1);  // pid 0: no process to watch
    std::this_thread::sleep_for(milliseconds(100));
    CHECK(calls == 0);
    // Killed and not yet reaped (a zombie, as a rank whose launcher is slow).
    REQUIRE(::kill(child, SIGKILL) == 0);
    const auto t0 = steady_clock::now();
    while (calls == 0 && steady_clock::now() - t0 < seconds(5)) std::this_thread::sleep_for(milliseconds(5));
    CHECK(calls == 1);
    CHECK(dead_rank == 3);
  }
  ::waitpid(child, nullptr, 0);
  // A process gone before the watch starts is not watched (it was never a live peer).
  dist::PeerWatch none({{1, static_cast<long>(child)}}, [](const dist::Peer&) { FAIL("called"); }, milliseconds(1));
  CHECK(none.watched() == 0);
  CHECK_FALSE(dist::process_space().empty());
}
