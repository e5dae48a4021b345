// conv2d, conv_transpose2d and linear.
#include "engine/ops/common.h"
#include "kernels/conv_transpose2d.h"

namespace lk {
using namespace detail;

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& o) {
  const char* op = "conv2d";
  require_rank(op, "input", x, 4);
  require_rank(op, "weight", w, 4);
  check_param_dtype(op, x, w);
  if (b.defined()) check_param_dtype(op, x, b);
  ConvGeom g;
  g.n = x.size(0), g.c_in = x.size(1), g.h = x.size(2), g.w = x.size(3);
  g.c_out = w.size(0), g.kh = w.size(2), g.kw = w.size(3);
  g.stride = o.stride, g.pad = o.padding, g.dil = o.dilation, g.groups = o.groups;
  if (g.stride < 1 || g.pad < 0 || g.dil < 1 || g.groups < 1)
    throw std::invalid_argument("conv2d: stride, dilation and groups must be >= 1 and padding >= 0");
  if (g.c_in % g.groups || g.c_out % g.groups || w.size(1) * g.groups != g.c_in)
    shape_error(op, "channels do not match weight for groups=" + std::to_string(g.groups), x.shape(), w.shape());
  if (b.defined() && (b.ndim() != 1 || b.size(0) != g.c_out)) shape_error(op, "bias must be (C_out)", b.shape(), w.shape());
  if (!g.finish()) shape_error(op, "kernel larger than padded input", x.shape(), w.shape());

  Tensor y = new_like(x, {g.n, g.c_out, g.oh, g.ow});
  if (!needs_grad({&x, &w, &b})) {
    be(x).conv2d_fwd(g, x, w, b, y);
    return y;
  }
  std::shared_ptr<void> kept = be(x).conv2d_fwd_train(g, x, w, b, y);
  record(y, op, {x, w, b}, [g, x, w, b, kept](const Tensor& dy) {
    Tensor dw;
    if (w.requires_grad()) dw = grad_buffer(w);
    else if (b.defined() && b.requires_grad()) dw = Tensor::empty(w.shape(), w.dtype(), w.device()).as_first_write();
    be(dy).conv2d_bwd(g, dy, x, w, b, x.requires_grad() ? grad_buffer(x) : Tensor(), dw, grad_of(b), kept);
  });
  return y;
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride, int64_t padding) {
  const char* op = "conv_transpose2d";
  require_rank(op, "input", x, 4);
  require_rank(op, "weight", w, 4);
  check_param_dtype(op, x, w);
  if (b.defined()) check_param_dtype(op, x, b);
  if (w.size(0) != x.size(1)) shape_error(op, "weight must be (C_in, C_out, K, K)", x.shape(), w.shape());
  if (w.size(2) != w.size(3)) shape_error(op, "only square kernels", w.shape());
  if (stride < 1 || padding < 0) throw std::invalid_argument("conv_transpose2d: stride must be >= 1, padding >= 0");
  const ConvGeom g = conv_transpose2d_geom(x.size(0), x.size(1), x.size(2), x.size(3), w.size(1), w.size(2), stride,
                                      padding, 1);
  if (g.h < 1 || g.w < 1) shape_error(op, "output would be empty", x.shape(), w.shape());
  if (b.defined() && (b.ndim() != 1 || b.size(0) != w.size(1))) shape_error(op, "bias must be (C_out)", b.shape(), w.shape());

  Tensor y = new_like(x, {g.n, g.c_in, g.h, g.w});
  be(x).conv_transpose2d_fwd(g, x, w, b, y);
  if (needs_grad({&x, &w, &b}))
    record(y, op, {x, w, b}, [g, x, w, b](const Tensor& dy) {
      if (x.requires_grad()) be(dy).conv_transpose2d_bwd_data(g, dy, w, grad_buffer(x));
      if (w.requires_grad() || (b.defined() && b.requires_grad())) {
        Tensor dw = w.requires_grad() ? grad_buffer(w) : Tensor::empty(w.shape(), w.dtype(), w.device()).as_first_write();
        be(dy).conv_transpose2d_bwd_weight(g, dy, x, dw, grad_of(b));
      }
    });
  return y;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  const char* op = "linear";
  require_rank(op, "input", x, 2);
  require_rank(op, "weight", w, 2);
  check_param_dtype(op, x, w);
  if (b.defined()) check_param_dtype(op, x, b);
  if (w.size(1) != x.size(1)) shape_error(op, "input features differ from weight (OUT, IN)", x.shape(), w.shape());
  if (b.defined() && (b.ndim() != 1 || b.size(0) != w.size(0))) shape_error(op, "bias must be (OUT)", b.shape(), w.shape());
  Tensor y = new_like(x, {x.size(0), w.size(0)});
  be(x).linear_fwd(x, w, b, y);
  if (needs_grad({&x, &w, &b}))
    record(y, op, {x, w, b}, [x, w, b](const Tensor& dy) {
      be(dy).linear_bwd(dy, x, w, grad_of(x), grad_of(w), grad_of(b));
    });
  return y;
}

}  // namespace lk
