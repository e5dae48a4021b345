// Memory-bound op benchmarks: batch norm (training), relu, sigmoid, the SE
// broadcast multiply, global average pooling, 2x2 max pooling, channel concat,
// bilinear upsampling of the deep-supervision logits, and the loss head
// (softmax, weighted cross-entropy, adaptive Tversky) on (8, 4, 128, 128).
// Each forward and backward; the backward's inputs come from one forward run
// during setup.
#include <functional>

#include "bench/bench_common.h"

namespace lk::bench {
namespace {

constexpr int64_t kF = sizeof(float);  // bytes per element (float and int32 alike)

// A prepared benchmark body: what one iteration runs and what it moves.
struct Job {
  std::function<void()> run;
  int64_t items = 0, bytes = 0;
};

void add_job(const std::string& name, std::function<Job()> make) {
  benchmark::RegisterBenchmark(name.c_str(),
                               [make](benchmark::State& st) {
                                 const Job j = make();
                                 Backend& be = cpu_backend();
                                 for (auto _ : st) {
                                   j.run();
                                   be.synchronize();
                                 }
                                 set_items(st, j.items);
                                 set_bytes(st, j.bytes);
                               })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinTime(0.2);
}

Shape act_shape(const Level& l) { return {kBatch, l.c, l.hw, l.hw}; }

// --------------------------------------------------------------- per-level ops

void add_batch_norm(const Level& l) {
  struct BN {
    Tensor x, gamma, beta, rm, rv, y, mean, invstd;
  };
  auto setup = [l] {
    BN t;
    t.x = rand_tensor(act_shape(l), 1);
    t.gamma = rand_tensor({l.c}, 2, 0.5f, 1.5f);
    t.beta = rand_tensor({l.c}, 3);
    t.rm = Tensor::zeros({l.c});
    t.rv = Tensor::full({l.c}, 1.0);
    t.y = Tensor::empty(act_shape(l));
    t.mean = Tensor::empty({l.c});
    t.invstd = Tensor::empty({l.c});
    cpu_backend().batch_norm_fwd(t.x, t.gamma, t.beta, t.rm, t.rv, true, 0.1, 1e-5, t.y, t.mean, t.invstd);
    return t;
  };
  const int64_t e = shape_numel(act_shape(l));
  add_job("batch_norm_train_fwd/" + l.str(), [=] {
    const BN t = setup();
    return Job{[t] {
                 cpu_backend().batch_norm_fwd(t.x, t.gamma, t.beta, t.rm, t.rv, true, 0.1, 1e-5, t.y, t.mean,
                                              t.invstd);
               },
               e, 2 * e * kF};
  });
  add_job("batch_norm_train_bwd/" + l.str(), [=] {
    const BN t = setup();
    const Tensor dy = rand_tensor(act_shape(l), 4);
    const Tensor dx = Tensor::zeros(act_shape(l)), dg = Tensor::zeros({l.c}), db = Tensor::zeros({l.c});
    return Job{[=] { cpu_backend().batch_norm_bwd(dy, t.x, t.gamma, t.mean, t.invstd, true, dx, dg, db); }, e,
               4 * e * kF};
  });
}

void add_activation(const char* name, Activation a, const Level& l) {
  const int64_t e = shape_numel(act_shape(l));
  add_job(std::string(name) + "_fwd/" + l.str(), [=] {
    const Tensor x = rand_tensor(act_shape(l), 1, -4.f, 4.f), y = Tensor::empty(act_shape(l));
    return Job{[=] { cpu_backend().activation_fwd(a, x, y); }, e, 2 * e * kF};
  });
  add_job(std::string(name) + "_bwd/" + l.str(), [=] {
    const Tensor x = rand_tensor(act_shape(l), 1, -4.f, 4.f), y = Tensor::empty(act_shape(l));
    cpu_backend().activation_fwd(a, x, y);
    const Tensor dy = rand_tensor(act_shape(l), 2), dx = Tensor::zeros(act_shape(l));
    return Job{[=] { cpu_backend().activation_bwd(a, dy, y, dx); }, e, 4 * e * kF};
  });
}

// The SE rescale: x (N, C, H, W) * s (N, C, 1, 1).
void add_broadcast_mul(const Level& l) {
  const Shape sx = act_shape(l), ss{kBatch, l.c, 1, 1};
  const int64_t e = shape_numel(sx), nc = shape_numel(ss);
  add_job("mul_bcast_nc11_fwd/" + l.str(), [=] {
    const Tensor x = rand_tensor(sx, 1), s = rand_tensor(ss, 2, 0.f, 1.f), y = Tensor::empty(sx);
    return Job{[=] { cpu_backend().binary_fwd(BinaryOp::Mul, x, s, y); }, e, (2 * e + nc) * kF};
  });
  add_job("mul_bcast_nc11_bwd/" + l.str(), [=] {
    const Tensor x = rand_tensor(sx, 1), s = rand_tensor(ss, 2, 0.f, 1.f), dy = rand_tensor(sx, 3);
    const Tensor dx = Tensor::zeros(sx), ds = Tensor::zeros(ss);
    return Job{[=] {
                 Backend& be = cpu_backend();
                 be.binary_bwd(BinaryOp::Mul, dy, s, dx);  // dx += dy * s
                 be.binary_bwd(BinaryOp::Mul, dy, x, ds);  // ds += sum_hw dy * x
               },
               e, (4 * e + 3 * nc) * kF};
  });
}

void add_global_avg_pool(const Level& l) {
  const Shape sx = act_shape(l), sy{kBatch, l.c, 1, 1};
  const int64_t e = shape_numel(sx), nc = shape_numel(sy);
  add_job("global_avg_pool_fwd/" + l.str(), [=] {
    const Tensor x = rand_tensor(sx, 1), y = Tensor::empty(sy);
    return Job{[=] { cpu_backend().global_avg_pool_fwd(x, y); }, e, (e + nc) * kF};
  });
  add_job("global_avg_pool_bwd/" + l.str(), [=] {
    const Tensor dy = rand_tensor(sy, 1), dx = Tensor::zeros(sx);
    return Job{[=] { cpu_backend().global_avg_pool_bwd(dy, dx); }, e, (2 * e + nc) * kF};
  });
}

void add_max_pool(const Level& l) {
  const Shape sx = act_shape(l), sy{kBatch, l.c, l.hw / 2, l.hw / 2};
  const int64_t e = shape_numel(sx), eo = shape_numel(sy);
  auto forward = [=](Tensor& x, Tensor& y, Tensor& idx) {
    x = rand_tensor(sx, 1);
    y = Tensor::empty(sy);
    idx = Tensor::empty(sy, DType::I32);
    cpu_backend().max_pool2d_fwd(2, 2, x, y, idx);
  };
  add_job("max_pool2d_2x2_fwd/" + l.str(), [=] {
    Tensor x, y, idx;
    forward(x, y, idx);
    return Job{[=] { cpu_backend().max_pool2d_fwd(2, 2, x, y, idx); }, e, (e + 2 * eo) * kF};
  });
  add_job("max_pool2d_2x2_bwd/" + l.str(), [=] {
    Tensor x, y, idx;
    forward(x, y, idx);
    const Tensor dy = rand_tensor(sy, 2), dx = Tensor::zeros(sx);
    return Job{[=] { cpu_backend().max_pool2d_bwd(2, 2, dy, idx, dx); }, e, (2 * e + 2 * eo) * kF};
  });
}

// A decoder skip connection: two (N, C, H, W) blocks into (N, 2C, H, W).
void add_concat(const Level& l) {
  const Shape sx = act_shape(l), sy{kBatch, 2 * l.c, l.hw, l.hw};
  const int64_t e = shape_numel(sy);
  const std::string label = l.str() + "+" + std::to_string(l.c);
  add_job("concat_fwd/" + label, [=] {
    const Tensor a = rand_tensor(sx, 1), b = rand_tensor(sx, 2), y = Tensor::empty(sy);
    return Job{[=] {
                 Backend& be = cpu_backend();
                 be.concat_fwd(0, a, y);
                 be.concat_fwd(l.c, b, y);
               },
               e, 2 * e * kF};
  });
  add_job("concat_bwd/" + label, [=] {
    const Tensor dy = rand_tensor(sy, 1), da = Tensor::zeros(sx), db = Tensor::zeros(sx);
    return Job{[=] {
                 Backend& be = cpu_backend();
                 be.concat_bwd(0, dy, da);
                 be.concat_bwd(l.c, dy, db);
               },
               e, 3 * e * kF};
  });
}

// ------------------------------------------------------ deep supervision, loss

// The side outputs' 4-channel logits at 64, 32, 16 brought to 128x128.
void add_upsample(int64_t hw) {
  const int64_t f = kImage / hw;
  const Shape sx{kBatch, kClasses, hw, hw}, sy{kBatch, kClasses, kImage, kImage};
  const int64_t ei = shape_numel(sx), eo = shape_numel(sy);
  const std::string name = "upsample_bilinear_x" + std::to_string(f);
  const std::string label = Level{hw, kClasses}.str();
  add_job(name + "_fwd/" + label, [=] {
    const Tensor x = rand_tensor(sx, 1), y = Tensor::empty(sy);
    return Job{[=] { cpu_backend().upsample_fwd(UpsampleMode::Bilinear, f, x, y); }, eo, (ei + eo) * kF};
  });
  add_job(name + "_bwd/" + label, [=] {
    const Tensor dy = rand_tensor(sy, 1), dx = Tensor::zeros(sx);
    return Job{[=] { cpu_backend().upsample_bwd(UpsampleMode::Bilinear, f, dy, dx); }, eo, (eo + 2 * ei) * kF};
  });
}

void add_loss_head() {
  const Shape sx{kBatch, kClasses, kImage, kImage}, st{kBatch, kImage, kImage};
  const int64_t e = shape_numel(sx), et = shape_numel(st);
  const std::string label = Level{kImage, kClasses}.str();
  auto probs_of = [=](const Tensor& logits) {
    Tensor p = Tensor::empty(sx);
    cpu_backend().softmax_fwd(logits, p);
    return p;
  };
  auto class_weights = [] { return Tensor::from_vector({0.2, 1.0, 1.5, 2.0}, {kClasses}); };

  add_job("softmax_fwd/" + label, [=] {
    const Tensor x = rand_tensor(sx, 1, -3.f, 3.f), y = Tensor::empty(sx);
    return Job{[=] { cpu_backend().softmax_fwd(x, y); }, e, 2 * e * kF};
  });
  add_job("softmax_bwd/" + label, [=] {
    const Tensor y = probs_of(rand_tensor(sx, 1, -3.f, 3.f)), dy = rand_tensor(sx, 2), dx = Tensor::zeros(sx);
    return Job{[=] { cpu_backend().softmax_bwd(dy, y, dx); }, e, 4 * e * kF};
  });

  add_job("cross_entropy_weighted_fwd/" + label, [=] {
    const Tensor x = rand_tensor(sx, 1, -3.f, 3.f), t = labels(st, kClasses, 2), w = class_weights();
    const Tensor loss = Tensor::empty({1}), probs = Tensor::empty(sx), wsum = Tensor::empty({1});
    return Job{[=] { cpu_backend().cross_entropy_fwd(x, t, w, loss, probs, wsum); }, e, (2 * e + et) * kF};
  });
  add_job("cross_entropy_weighted_bwd/" + label, [=] {
    const Tensor x = rand_tensor(sx, 1, -3.f, 3.f), t = labels(st, kClasses, 2), w = class_weights();
    const Tensor loss = Tensor::empty({1}), probs = Tensor::empty(sx), wsum = Tensor::empty({1});
    cpu_backend().cross_entropy_fwd(x, t, w, loss, probs, wsum);
    const Tensor dl = Tensor::full({1}, 1.0), dx = Tensor::zeros(sx);
    return Job{[=] { cpu_backend().cross_entropy_bwd(dl, probs, t, w, wsum, dx); }, e, (3 * e + et) * kF};
  });

  const TverskyParams tp;
  add_job("tversky_fwd/" + label, [=] {
    const Tensor p = probs_of(rand_tensor(sx, 1, -3.f, 3.f)), t = labels(st, kClasses, 2);
    const Tensor loss = Tensor::empty({1}), stats = Tensor::empty({4 * kClasses});
    return Job{[=] { cpu_backend().tversky_fwd(tp, p, t, loss, stats); }, e, (e + et) * kF};
  });
  add_job("tversky_bwd/" + label, [=] {
    const Tensor p = probs_of(rand_tensor(sx, 1, -3.f, 3.f)), t = labels(st, kClasses, 2);
    const Tensor loss = Tensor::empty({1}), stats = Tensor::empty({4 * kClasses});
    cpu_backend().tversky_fwd(tp, p, t, loss, stats);
    const Tensor dl = Tensor::full({1}, 1.0), dp = Tensor::zeros(sx);
    return Job{[=] { cpu_backend().tversky_bwd(tp, dl, t, stats, dp); }, e, (2 * e + et) * kF};
  });
}

}  // namespace

void register_memory_benchmarks() {
  for (const Level& l : key_levels()) add_batch_norm(l);
  for (const Level& l : key_levels()) add_activation("relu", Activation::Relu, l);
  for (const Level& l : key_levels()) add_activation("sigmoid", Activation::Sigmoid, l);
  for (const Level& l : key_levels()) add_broadcast_mul(l);
  for (const Level& l : key_levels()) add_global_avg_pool(l);
  for (const Level& l : key_levels()) add_max_pool(l);
  for (const Level& l : key_levels()) add_concat(l);
  for (int64_t hw : {64, 32, 16}) add_upsample(hw);
  add_loss_head();
}

}  // namespace lk::bench
