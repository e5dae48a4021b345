#include "engine/optim.h"

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

AdamW::AdamW(std::vector<Tensor> params, Options o) : Optimizer(std::move(params)), o_(o) {
  lr_ = o.lr;
  for (const Tensor& p : params_) {
    require_host_float(p);
    m_.push_back(Tensor::zeros(p.shape(), p.dtype()));
    v_.push_back(Tensor::zeros(p.shape(), p.dtype()));
  }
}

void AdamW::step() {
  ++t_;
  const double bc1 = 1 - std::pow(o_.beta1, static_cast<double>(t_));
  const double bc2 = 1 - std::pow(o_.beta2, static_cast<double>(t_));
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    for_each_float(p, [&]<typename T>() {
      T* w = p.data<T>();
      const T* d = g.data<T>();
      T* m = m_[i].data<T>();
      T* v = v_[i].data<T>();
      const double step = lr_ / bc1, sq = std::sqrt(bc2);
      for (int64_t k = 0; k < p.numel(); ++k) {
        w[k] = static_cast<T>(w[k] * (1 - lr_ * o_.weight_decay));
        m[k] = static_cast<T>(o_.beta1 * m[k] + (1 - o_.beta1) * d[k]);
        v[k] = static_cast<T>(o_.beta2 * v[k] + (1 - o_.beta2) * d[k] * d[k]);
        w[k] = static_cast<T>(w[k] - step * m[k] / (std::sqrt(static_cast<double>(v[k])) / sq + o_.eps));
      }
    });
  }
}

}  // namespace lk
