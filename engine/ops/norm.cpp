// batch_norm, batch_norm_relu, lka_gate.
#include "engine/ops/common.h"

namespace lk {
using namespace detail;

namespace {
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
  const int64_t c = check_bn(op, x, gamma, beta, running_mean, running_var, training);

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
  const int64_t c = check_bn(op, x, gamma, beta, running_mean, running_var, training);
  if (mode == BnResidual::None && residual.defined())
    throw std::invalid_argument("batch_norm_relu: a residual was given without a residual mode");
  if (mode != BnResidual::None) {
    if (!residual.defined() || residual.shape() != x.shape())
      shape_error(op, "the residual must have the input's shape", x.shape(),
                  residual.defined() ? residual.shape() : Shape{});
    check_dtype_match(op, x, residual);
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
  const int64_t c = check_bn(op, x, gamma, beta, running_mean, running_var, training);
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
