// cast: the boundary of mixed precision.
#include "engine/ops/common.h"

namespace lk {
using namespace detail;

Tensor cast(const Tensor& x, DType dtype) {
  const char* op = "cast";
  if (!x.defined()) throw std::invalid_argument("cast: input is undefined");
  if (!is_float(x.dtype()) || !is_float(dtype))
    throw std::invalid_argument(std::string("cast: float types only (") + dtype_name(x.dtype()) + " to " +
                                dtype_name(dtype) + ")");
  if (x.dtype() == dtype) return x;
  Tensor y = Tensor::empty(x.shape(), dtype, x.device());
  be(x).cast(x, y, false);
  if (needs_grad({&x})) record(y, op, {x}, [x](const Tensor& dy) { be(dy).cast(dy, grad_buffer(x), true); });
  return y;
}

}  // namespace lk
