#include "engine/loss_scaler.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/ops.h"

namespace lk {

LossScaler::LossScaler(bool enabled, Options o) : enabled_(enabled), o_(o), scale_(enabled ? o.init_scale : 1.0) {
  if (!(o.init_scale > 0) || !(o.growth >= 1) || !(o.backoff > 0 && o.backoff < 1) || o.interval < 1)
    throw std::invalid_argument("loss scaler: bad options");
}

void LossScaler::backward(const Tensor& loss) const {
  if (!enabled_) return lk::backward(loss);
  lk::backward(loss, Tensor::full(loss.shape(), scale_, loss.dtype(), loss.device()));
}

void LossScaler::backward(const Tensor& loss, const std::function<void(const Tensor&)>& on_leaf_ready) const {
  const Tensor seed = enabled_ ? Tensor::full(loss.shape(), scale_, loss.dtype(), loss.device()) : Tensor();
  lk::backward(loss, seed, false, on_leaf_ready);
}

bool LossScaler::unscale(const std::vector<Tensor>& params) {
  if (!enabled_) return true;
  NoGradGuard ng;
  // The sum over every gradient of its mean (global_avg_pool of the
  // flattened gradient): not finite iff some gradient element is not
  // (a NaN or an infinity survives the sums), short of a finite overflow.
  Tensor total;
  for (const Tensor& p : params) {
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    backend(g.device()).scale(g, 1.0 / scale_);
    const Tensor m = global_avg_pool(g.view({1, 1, 1, g.numel()}));
    total = total.defined() ? add(total, m) : m;
  }
  const bool finite = !total.defined() || std::isfinite(total.item());
  if (finite) {
    if (++good_ >= o_.interval) scale_ *= o_.growth, good_ = 0;
  } else {
    scale_ *= o_.backoff;
    good_ = 0;
    ++skipped_;
  }
  return finite;
}

DType parse_precision(const std::string& s) {
  if (s == "fp32") return DType::F32;
  if (s == "bf16") return DType::BF16;
  if (s == "fp16") return DType::F16;
  throw std::invalid_argument("--precision " + s + ": expected fp32, bf16 or fp16");
}

const char* precision_name(DType t) {
  switch (t) {
    case DType::F32: return "fp32";
    case DType::BF16: return "bf16";
    case DType::F16: return "fp16";
    default: throw std::invalid_argument(std::string("not a training precision: ") + dtype_name(t));
  }
}

}  // namespace lk
