#include "engine/optim.h"

#include "engine/autograd.h"
#include "engine/backend.h"
#include "kernels/adamw.h"

#include <cmath>
#include <stdexcept>

namespace lk {

namespace {
void require_host_float(const Tensor& p) {
  if (p.device().type != DeviceType::CPU || p.dtype() == DType::I32)
    throw std::invalid_argument("optimiser: parameter '" + p.name() + "' must be a host float tensor");
}

template <typename F>
void for_each_float(const Tensor& p, F&& f) {
  if (p.dtype() == DType::F32) f.template operator()<float>();
  else f.template operator()<double>();
}
}  // namespace

Optimizer::Optimizer(std::vector<Tensor> params) : params_(std::move(params)) { grad_arena(params_); }

void Optimizer::zero_grad() {
  for (Tensor& p : params_) p.zero_grad();
}

SGD::SGD(std::vector<Tensor> params, double lr, double momentum) : Optimizer(std::move(params)), momentum_(momentum) {
  lr_ = lr;
  for (const Tensor& p : params_) {
    require_host_float(p);
    velocity_.push_back(momentum_ > 0 ? Tensor::zeros(p.shape(), p.dtype()) : Tensor());
  }
}

void SGD::step() {
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    for_each_float(p, [&]<typename T>() {
      T* w = p.data<T>();
      const T* d = g.data<T>();
      T* v = momentum_ > 0 ? velocity_[i].data<T>() : nullptr;
      for (int64_t k = 0; k < p.numel(); ++k) {
        T step = d[k];
        if (v) step = v[k] = static_cast<T>(momentum_) * v[k] + d[k];
        w[k] -= static_cast<T>(lr_) * step;
      }
    });
  }
}

Tensor adamw_state(Device d, double lr, int64_t steps_done) {
  std::vector<double> s(cpu::kAdamWStateSize, 0.0);
  s[cpu::kAdamWLr] = lr;
  s[cpu::kAdamWStep] = static_cast<double>(steps_done);
  const Tensor host = Tensor::from_vector(s, {cpu::kAdamWStateSize}, DType::F64);
  return d.type == DeviceType::CPU ? host : host.to(d);
}

AdamW::AdamW(std::vector<Tensor> params, Options o) : Optimizer(std::move(params)), o_(o) {
  lr_ = lr_on_device_ = o.lr;
  state_ = adamw_state(params_.empty() ? cpu_device() : params_.front().device(), lr_, 0);
  for (const Tensor& p : params_) {
    if (p.dtype() == DType::I32) throw std::invalid_argument("AdamW: parameter '" + p.name() + "' is not a float tensor");
    if (!(p.device() == params_.front().device()))
      throw std::invalid_argument("AdamW: parameters on different devices (" + p.device().str() + " and " +
                                  params_.front().device().str() + ")");
    m_.push_back(Tensor::zeros(p.shape(), p.dtype(), p.device()));
    v_.push_back(Tensor::zeros(p.shape(), p.dtype(), p.device()));
  }
}

void AdamW::upload_lr() {
  if (lr_ == lr_on_device_) return;
  backend(state_.device()).fill(state_.head(1), lr_);
  lr_on_device_ = lr_;
}

void AdamW::set_steps(int64_t t) {
  t_ = t;
  state_.copy_from(adamw_state(cpu_device(), lr_, t));
  lr_on_device_ = lr_;
}

void AdamW::step() {
  ++t_;
  if (params_.empty()) return;
  upload_lr();
  const AdamWParams a{lr_, o_.beta1, o_.beta2, o_.eps, o_.weight_decay};
  backend(params_.front().device()).adamw_step(a, state_, params_, m_, v_, skip_);
}

int64_t AdamW::steps() const {
  if (!skip_.defined()) return t_;
  return static_cast<int64_t>(state_.to(cpu_device()).data<double>()[cpu::kAdamWStep]);
}

void AdamW::skip_if(Tensor flag) {
  if (flag.defined() && (flag.dtype() != DType::F32 || flag.numel() != 1 ||
                         !(flag.device() == state_.device())))
    throw std::invalid_argument("AdamW::skip_if: the flag must be one float32 element on " + state_.device().str());
  skip_ = std::move(flag);
}

}  // namespace lk
