// relu, sigmoid, broadcasting add / mul, scale.
#include "engine/ops/common.h"

namespace lk {
using namespace detail;

namespace {
Tensor activation(const char* op, Activation a, const Tensor& x) {
  if (!x.defined()) throw std::invalid_argument(std::string(op) + ": input is undefined");
  require_float(op, x);
  Tensor y = new_like(x, x.shape());
  be(x).activation_fwd(a, x, y);
  if (needs_grad({&x})) {
    Tensor ys = y.detach();  // saved without its history: no reference cycle
    record(y, op, {x}, [a, x, ys](const Tensor& dy) { be(dy).activation_bwd(a, dy, ys, grad_buffer(x)); });
  }
  return y;
}

Shape broadcast_shape(const char* op, const Tensor& a, const Tensor& b) {
  if (a.ndim() != b.ndim() || a.ndim() > 4) shape_error(op, "broadcasting needs equal ranks <= 4", a.shape(), b.shape());
  Shape s(a.ndim());
  for (int d = 0; d < a.ndim(); ++d) {
    const int64_t x = a.size(d), y = b.size(d);
    if (x != y && x != 1 && y != 1) shape_error(op, "shapes cannot broadcast", a.shape(), b.shape());
    s[d] = std::max(x, y);
  }
  return s;
}

Tensor binary(const char* op, BinaryOp kind, const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) throw std::invalid_argument(std::string(op) + ": input is undefined");
  check_dtype_match(op, a, b);
  require_float(op, a);
  Tensor y = new_like(a, broadcast_shape(op, a, b));
  be(a).binary_fwd(kind, a, b, y);
  // A sum passes its gradient through to an operand of its shape (not when
  // both operands are one tensor: that one gets twice dy).
  int pass = -1;
  if (kind == BinaryOp::Add && a.impl() != b.impl()) pass = a.shape() == y.shape() ? 0 : b.shape() == y.shape() ? 1 : -1;
  if (needs_grad({&a, &b}))
    record(
        y, op, {a, b},
        [kind, a, b](const Tensor& dy) {
          if (a.requires_grad() && !took_gradient(a, dy)) be(dy).binary_bwd(kind, dy, b, grad_buffer(a));
          if (b.requires_grad() && !took_gradient(b, dy)) be(dy).binary_bwd(kind, dy, a, grad_buffer(b));
        },
        pass);
  return y;
}
}  // namespace

Tensor relu(const Tensor& x) { return activation("relu", Activation::Relu, x); }
Tensor sigmoid(const Tensor& x) { return activation("sigmoid", Activation::Sigmoid, x); }
Tensor add(const Tensor& a, const Tensor& b) { return binary("add", BinaryOp::Add, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary("mul", BinaryOp::Mul, a, b); }

Tensor scale(const Tensor& x, double s) {
  if (!x.defined()) throw std::invalid_argument("scale: input is undefined");
  require_float("scale", x);
  Tensor y = new_like(x, x.shape());
  be(x).axpy(s, x, y.as_first_write());  // y = s * x
  if (needs_grad({&x})) record(y, "scale", {x}, [x, s](const Tensor& dy) { be(dy).axpy(s, dy, grad_buffer(x)); });
  return y;
}

}  // namespace lk
