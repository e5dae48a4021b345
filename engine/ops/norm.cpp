// batch_norm, batch_norm_relu, lka_gate; with sync_bn under a
// BatchReduceScope (engine/ops.h) their training statistics are the whole
// data-parallel batch's.
#include <algorithm>

#include "engine/ops/common.h"

namespace lk {
using namespace detail;

namespace {

Tensor on_device_of(const Tensor& like, const std::vector<double>& v) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}, like.dtype()).to(like.device());
}

// Training batch norm over the batches of all ranks, in the training
// kernel's two passes: the ranks add up sum x and the count M (the mean),
// then sum (x - mean)^2 (the biased variance); the kernel normalises with
// them as it would with its own, and the running statistics take the
// unbiased variance the same way - so one rank computes the bits the fused
// kernel computes, and N ranks the whole batch's statistics. The backward
// adds up sum dy and sum dy*xhat the same way for dx; dgamma and dbeta stay
// this rank's share (the gradient sync adds the shares).
Tensor batch_norm_synced(const std::shared_ptr<const BatchReduce>& r, const Tensor& x, const Tensor& gamma,
                         const Tensor& beta, const Tensor& running_mean, const Tensor& running_var, double momentum,
                         double eps) {
  const int64_t c = x.size(1);
  std::vector<double> mean = be(x).batch_norm_sums(x, {}, {}, {}, {});
  mean.push_back(static_cast<double>(x.numel() / c));
  r->sum(mean.data(), c + 1);
  const double m = mean.back();
  mean.pop_back();
  if (m < 2) shape_error("batch_norm", "training needs more than one value per channel over the ranks", x.shape());
  for (double& v : mean) v /= m;
  std::vector<double> var = be(x).batch_norm_sums(x, mean, {}, {}, {});
  r->sum(var.data(), c);
  std::vector<double> rm = host_values(running_mean), rv = host_values(running_var);
  for (size_t ch = 0; ch < mean.size(); ++ch) {
    var[ch] /= m;
    rm[ch] = (1 - momentum) * rm[ch] + momentum * mean[ch];
    rv[ch] = (1 - momentum) * rv[ch] + momentum * var[ch] * m / (m - 1);
  }
  set_values(running_mean, rm);
  set_values(running_var, rv);
  Tensor y = new_like(x, x.shape());
  Tensor save_mean = new_like(gamma, {c}), save_invstd = new_like(gamma, {c});
  be(x).batch_norm_fwd_stats(x, gamma, beta, mean, var, eps, y, save_mean, save_invstd);
  if (needs_grad({&x, &gamma, &beta}))
    record(y, "batch_norm", {x, gamma, beta}, [r, x, gamma, beta, save_mean, save_invstd, m, c](const Tensor& dy) {
      std::vector<double> s = be(dy).batch_norm_sums(x, {}, dy, save_mean, save_invstd);
      const auto half = [&](int64_t from) {
        return on_device_of(gamma, std::vector<double>(s.begin() + from, s.begin() + from + c));
      };
      if (gamma.requires_grad()) be(dy).axpy(1.0, half(c), grad_buffer(gamma));
      if (beta.requires_grad()) be(dy).axpy(1.0, half(0), grad_buffer(beta));
      if (!x.requires_grad()) return;
      r->sum(s.data(), static_cast<int64_t>(s.size()));
      for (double& e : s) e /= m;
      be(dy).batch_norm_bwd_dx(dy, x, gamma, save_mean, save_invstd, s, grad_buffer(x));
    });
  return y;
}

// The checks batch_norm, batch_norm_relu and lka_gate share: x (N, C, ...)
// float, the parameters and running statistics (C) of x's dtype and device,
// more than one value per channel in training. Returns C.
int64_t check_bn(const char* op, const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                 const Tensor& running_var, bool training) {
  if (!x.defined() || x.ndim() < 2) shape_error(op, "input must be (N, C, ...)", x.defined() ? x.shape() : Shape{});
  require_float(op, x);
  const int64_t c = x.size(1);
  for (const Tensor* p : {&gamma, &beta, &running_mean, &running_var}) {
    if (!p->defined() || p->ndim() != 1 || p->size(0) != c)
      shape_error(op, "parameters and running stats must be (C)", x.shape(), p->defined() ? p->shape() : Shape{});
    check_param_dtype(op, x, *p);
  }
  if (training && x.numel() / c < 2) shape_error(op, "training needs more than one value per channel", x.shape());
  return c;
}
}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum, double eps) {
  const char* op = "batch_norm";
  // Synchronised statistics: more than one value per channel over the ranks.
  const auto& r = current_batch_reduce();
  const bool synced = training && r && r->sync_bn;
  const int64_t c = check_bn(op, x, gamma, beta, running_mean, running_var, training && !synced);
  if (synced) return batch_norm_synced(r, x, gamma, beta, running_mean, running_var, momentum, eps);

  Tensor y = new_like(x, x.shape());
  Tensor mean = new_like(gamma, {c}), invstd = new_like(gamma, {c});
  be(x).batch_norm_fwd(x, gamma, beta, running_mean, running_var, training, momentum, eps, y, mean, invstd);
  if (needs_grad({&x, &gamma, &beta}))
    record(y, op, {x, gamma, beta}, [x, gamma, beta, mean, invstd, training](const Tensor& dy) {
      be(dy).batch_norm_bwd(dy, x, gamma, mean, invstd, training, grad_of(x), grad_of(gamma), grad_of(beta));
    });
  return y;
}

Tensor batch_norm_relu(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                       const Tensor& running_var, bool training, double momentum, double eps, const Tensor& residual,
                       BnResidual mode) {
  const char* op = "batch_norm_relu";
  const auto& r = current_batch_reduce();
  const bool synced = training && r && r->sync_bn;
  const int64_t c = check_bn(op, x, gamma, beta, running_mean, running_var, training && !synced);
  if (mode == BnResidual::None && residual.defined())
    throw std::invalid_argument("batch_norm_relu: a residual was given without a residual mode");
  if (mode != BnResidual::None) {
    if (!residual.defined() || residual.shape() != x.shape())
      shape_error(op, "the residual must have the input's shape", x.shape(),
                  residual.defined() ? residual.shape() : Shape{});
    check_dtype_match(op, x, residual);
  }
  // Synchronised statistics: the composition, whose batch_norm reduces them.
  if (synced) {
    const Tensor bn = batch_norm(x, gamma, beta, running_mean, running_var, true, momentum, eps);
    switch (mode) {
      case BnResidual::None: return relu(bn);
      case BnResidual::AfterRelu: return add(relu(bn), residual);
      case BnResidual::BeforeRelu: return relu(add(bn, residual));
    }
  }

  Tensor y = new_like(x, x.shape());
  Tensor mean = new_like(gamma, {c}), invstd = new_like(gamma, {c});
  be(x).batch_norm_relu_fwd(x, gamma, beta, running_mean, running_var, training, momentum, eps, residual, mode, y,
                            mean, invstd);
  if (needs_grad({&x, &gamma, &beta, &residual})) {
    // y (saved without its history) gives BeforeRelu's mask; the others recompute it from x.
    const Tensor ys = mode == BnResidual::BeforeRelu ? y.detach() : Tensor();
    record(y, op, {x, gamma, beta, residual},
           [x, gamma, beta, residual, ys, mean, invstd, training, mode](const Tensor& dy) {
             be(dy).batch_norm_relu_bwd(mode, dy, x, ys, gamma, beta, mean, invstd, training, grad_of(x),
                                        grad_of(residual), grad_of(gamma), grad_of(beta));
           });
  }
  return y;
}

Tensor lka_gate(const Tensor& x, const Tensor& f, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                const Tensor& running_var, bool training, double momentum, double eps) {
  const char* op = "lka_gate";
  if (!x.defined() || !f.defined() || x.ndim() < 2) shape_error(op, "inputs must be (N, C, ...)", x.defined() ? x.shape() : Shape{});
  if (x.shape() != f.shape()) shape_error(op, "x and f must have the same shape", x.shape(), f.shape());
  check_dtype_match(op, x, f);
  const auto& r = current_batch_reduce();
  const bool synced = training && r && r->sync_bn;
  const int64_t c = check_bn(op, x, gamma, beta, running_mean, running_var, training && !synced);
  // Synchronised statistics: the composition, whose batch_norm reduces them.
  if (synced)
    return mul(x, sigmoid(batch_norm(f, gamma, beta, running_mean, running_var, true, momentum, eps)));
  Tensor y = new_like(x, x.shape());
  Tensor mean = new_like(gamma, {c}), invstd = new_like(gamma, {c});
  be(x).lka_gate_fwd(x, f, gamma, beta, running_mean, running_var, training, momentum, eps, y, mean, invstd);
  if (needs_grad({&x, &f, &gamma, &beta}))
    record(y, op, {x, f, gamma, beta}, [x, f, gamma, beta, mean, invstd, training](const Tensor& dy) {
      be(dy).lka_gate_bwd(dy, x, f, gamma, beta, mean, invstd, training, grad_of(x), grad_of(f), grad_of(gamma),
                          grad_of(beta));
    });
  return y;
}

}  // namespace lk
