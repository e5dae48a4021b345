// global_avg_pool, max_pool2d, bilinear / nearest upsampling.
#include "engine/ops/common.h"

namespace lk {
using namespace detail;

Tensor global_avg_pool(const Tensor& x) {
  const char* op = "global_avg_pool";
  require_rank(op, "input", x, 4);
  require_float(op, x);
  Tensor y = new_like(x, {x.size(0), x.size(1), 1, 1});
  be(x).global_avg_pool_fwd(x, y);
  if (needs_grad({&x})) record(y, op, {x}, [x](const Tensor& dy) { be(dy).global_avg_pool_bwd(dy, grad_buffer(x)); });
  return y;
}

Tensor max_pool2d(const Tensor& x, int64_t k, int64_t stride) {
  const char* op = "max_pool2d";
  require_rank(op, "input", x, 4);
  require_float(op, x);
  if (k < 1 || stride < 1) throw std::invalid_argument("max_pool2d: kernel and stride must be >= 1");
  if (x.size(2) < k || x.size(3) < k) shape_error(op, "input smaller than the window " + std::to_string(k), x.shape());
  const int64_t oh = (x.size(2) - k) / stride + 1, ow = (x.size(3) - k) / stride + 1;
  Tensor y = new_like(x, {x.size(0), x.size(1), oh, ow});
  Tensor idx = Tensor::empty(y.shape(), DType::I32, x.device());
  be(x).max_pool2d_fwd(k, stride, x, y, idx);
  if (needs_grad({&x}))
    record(y, op, {x}, [x, idx, k, stride](const Tensor& dy) { be(dy).max_pool2d_bwd(k, stride, dy, idx, grad_buffer(x)); });
  return y;
}

namespace {
Tensor upsample(const char* op, UpsampleMode m, const Tensor& x, int64_t f) {
  require_rank(op, "input", x, 4);
  require_float(op, x);
  if (f < 1) throw std::invalid_argument(std::string(op) + ": factor must be >= 1");
  Tensor y = new_like(x, {x.size(0), x.size(1), x.size(2) * f, x.size(3) * f});
  be(x).upsample_fwd(m, f, x, y);
  if (needs_grad({&x})) record(y, op, {x}, [m, f, x](const Tensor& dy) { be(dy).upsample_bwd(m, f, dy, grad_buffer(x)); });
  return y;
}
}  // namespace

Tensor upsample_bilinear(const Tensor& x, int64_t f) { return upsample("upsample_bilinear", UpsampleMode::Bilinear, x, f); }
Tensor upsample_nearest(const Tensor& x, int64_t f) { return upsample("upsample_nearest", UpsampleMode::Nearest, x, f); }

}  // namespace lk
