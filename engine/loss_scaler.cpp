#include "engine/loss_scaler.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "engine/autograd.h"
#include "engine/backend.h"

namespace lk {

LossScaler::LossScaler(bool enabled, Options o, Device device) : enabled_(enabled), o_(o) {
  if (!(o.init_scale > 0) || !(o.growth >= 1) || !(o.backoff > 0 && o.backoff < 1) || o.interval < 1 ||
      o.interval > (1 << 24) || !std::isfinite(static_cast<float>(o.init_scale)))
    throw std::invalid_argument("loss scaler: bad options (the scale must be a positive finite float32)");
  if (!enabled_) return;
  std::vector<double> s(cpu::kLossScaleStateSize, 0.0);
  s[cpu::kLossScale] = static_cast<float>(o.init_scale);
  s[cpu::kLossScaleInv] = 1.0f / static_cast<float>(o.init_scale);
  const Tensor host = Tensor::from_vector(s, {cpu::kLossScaleStateSize}, DType::F32);
  state_ = device.type == DeviceType::CPU ? host : host.to(device);
}

double LossScaler::scale() const {
  return enabled_ ? state_.to(cpu_device()).data<float>()[cpu::kLossScale] : 1.0;
}

int64_t LossScaler::skipped() const {
  return enabled_ ? static_cast<int64_t>(state_.to(cpu_device()).data<float>()[cpu::kLossScaleSkipped]) : 0;
}

Tensor LossScaler::found_inf() const {
  return enabled_ ? state_.slice_as(cpu::kLossScaleFoundInf, {1}) : Tensor();
}

// The backward's seed: S copied on the device into a tensor of the loss's shape.
Tensor LossScaler::seed(const Tensor& loss) const {
  if (loss.dtype() != DType::F32 || loss.numel() != 1 || !(loss.device() == state_.device()))
    throw std::invalid_argument("loss scaler: the loss must be one float32 element on " + state_.device().str());
  const Tensor s = Tensor::empty(loss.shape(), DType::F32, loss.device());
  backend(loss.device()).copy(state_.slice_as(cpu::kLossScale, loss.shape()), s);
  return s;
}

void LossScaler::backward(const Tensor& loss) const {
  if (!enabled_) return lk::backward(loss);
  lk::backward(loss, seed(loss));
}

void LossScaler::backward(const Tensor& loss, const std::function<void(const Tensor&)>& on_leaf_ready) const {
  lk::backward(loss, enabled_ ? seed(loss) : Tensor(), false, on_leaf_ready);
}

void LossScaler::unscale(const std::vector<Tensor>& params) {
  if (!enabled_) return;
  std::vector<Tensor> grads;
  for (const Tensor& p : params) {
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    if (g.dtype() != DType::F32)
      throw std::invalid_argument("loss scaler: gradients are float32 (master weights), '" + p.name() + "' is " +
                                  dtype_name(g.dtype()));
    grads.push_back(g);
  }
  const cpu::LossScaleParams lp{static_cast<float>(o_.growth), static_cast<float>(o_.backoff),
                                static_cast<int32_t>(o_.interval)};
  backend(state_.device()).grad_unscale(grads, lp, state_);  // no gradient: a clean step
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
