// concat along channels, reshape.
#include "engine/ops/common.h"

namespace lk {
using namespace detail;

Tensor concat(const std::vector<Tensor>& xs) {
  const char* op = "concat";
  if (xs.empty()) throw std::invalid_argument("concat: no inputs");
  const Tensor& first = xs[0];
  if (!first.defined() || first.ndim() < 2) shape_error(op, "inputs must be (N, C, ...)", first.defined() ? first.shape() : Shape{});
  int64_t channels = 0;
  for (const Tensor& t : xs) {
    check_dtype_match(op, first, t);
    Shape a = first.shape(), b = t.shape();
    if (a.size() != b.size()) shape_error(op, "ranks differ", a, b);
    a[1] = b[1] = 0;
    if (a != b) shape_error(op, "all dims but channels must match", first.shape(), t.shape());
    channels += t.size(1);
  }
  Shape out = first.shape();
  out[1] = channels;
  Tensor y = new_like(first, out);
  int64_t off = 0;
  std::vector<int64_t> offsets;
  for (const Tensor& t : xs) {
    be(t).concat_fwd(off, t, y);
    offsets.push_back(off);
    off += t.size(1);
  }
  bool any = false;
  for (const Tensor& t : xs) any = any || needs_grad({&t});
  if (any)
    record(y, op, xs, [xs, offsets](const Tensor& dy) {
      for (size_t i = 0; i < xs.size(); ++i)
        if (xs[i].requires_grad()) be(dy).concat_bwd(offsets[i], dy, grad_buffer(xs[i]));
    });
  return y;
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  Tensor y = x.view(shape);
  if (needs_grad({&x}))
    record(
        y, "reshape", {x},
        [x](const Tensor& dy) {
          if (!took_gradient(x, dy)) be(dy).axpy(1.0, dy.view(x.shape()), grad_buffer(x));
        },
        0);
  return y;
}

}  // namespace lk
