#include "engine/module.h"

#include <atomic>

#include <cmath>
#include <stdexcept>

namespace lk {

Tensor& Module::register_parameter(const std::string& name, Tensor t) {
  t.set_requires_grad(true);
  params_.emplace_back(name, t);
  return params_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor t) {
  buffers_.emplace_back(name, t);
  return buffers_.back().second;
}

void Module::collect(const std::string& prefix, bool params, std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [n, t] : params ? params_ : buffers_) out.emplace_back(prefix + n, t);
  for (const auto& [n, m] : children_) m->collect(prefix + n + ".", params, out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", true, out);
  for (auto& [n, t] : out) t.set_name(n);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", false, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (const Tensor& t : parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, m] : children_) m->train(on);
}

void Module::cast_(DType dtype) {
  auto all = named_parameters();
  for (auto& b : named_buffers()) all.push_back(b);
  for (auto& [n, t] : all) {
    if (t.dtype() == DType::I32 || t.dtype() == dtype) continue;
    const Tensor c = t.to(dtype);
    t.impl()->storage = c.impl()->storage;
    t.impl()->dtype = dtype;
    t.impl()->grad.reset();
  }
}

void Module::to_device(Device device) {
  auto all = named_parameters();
  for (auto& b : named_buffers()) all.push_back(b);
  for (auto& [n, t] : all) {
    // Integer buffers (BatchNorm's num_batches_tracked) are host-side counters.
    if (t.device() == device || t.dtype() == DType::I32) continue;
    const Tensor c = t.to(device);
    t.impl()->storage = c.impl()->storage;
    t.impl()->grad.reset();
  }
}

void Module::zero_grad() {
  for (Tensor& t : parameters()) t.zero_grad();
}

void uniform_(Tensor& t, double bound, Rng& rng) {
  std::uniform_real_distribution<double> dist(-bound, bound);
  std::vector<double> v(t.numel());
  for (double& x : v) x = dist(rng);
  t.copy_from(Tensor::from_vector(v, t.shape(), DType::F64));
}

// PyTorch's defaults: kaiming_uniform_(a=sqrt(5)) gives a weight bound of
// 1/sqrt(fan_in); the bias bound is also 1/sqrt(fan_in). fan_in is
// weight.size(1) * receptive field (for ConvTranspose2d that is C_out*K*K).
Conv2d::Conv2d(int64_t c_in, int64_t c_out, int64_t k, Rng& rng, Conv2dOptions o, bool has_bias) : opts(o) {
  if (c_in % o.groups || c_out % o.groups) throw std::invalid_argument("Conv2d: channels not divisible by groups");
  weight = register_parameter("weight", Tensor::empty({c_out, c_in / o.groups, k, k}));
  const double bound = 1.0 / std::sqrt(static_cast<double>(c_in / o.groups * k * k));
  uniform_(weight, bound, rng);
  if (has_bias) {
    bias = register_parameter("bias", Tensor::empty({c_out}));
    uniform_(bias, bound, rng);
  }
}
Tensor Conv2d::forward(const Tensor& x) const { return conv2d(x, weight, bias, opts); }

ConvTranspose2d::ConvTranspose2d(int64_t c_in, int64_t c_out, int64_t k, int64_t s, Rng& rng, bool has_bias)
    : stride(s) {
  weight = register_parameter("weight", Tensor::empty({c_in, c_out, k, k}));
  const double bound = 1.0 / std::sqrt(static_cast<double>(c_out * k * k));
  uniform_(weight, bound, rng);
  if (has_bias) {
    bias = register_parameter("bias", Tensor::empty({c_out}));
    uniform_(bias, bound, rng);
  }
}
Tensor ConvTranspose2d::forward(const Tensor& x) const { return conv_transpose2d(x, weight, bias, stride, 0); }

BatchNorm2d::BatchNorm2d(int64_t c, double m, double e) : momentum(m), eps(e) {
  weight = register_parameter("weight", Tensor::full({c}, 1.0));
  bias = register_parameter("bias", Tensor::zeros({c}));
  running_mean = register_buffer("running_mean", Tensor::zeros({c}));
  running_var = register_buffer("running_var", Tensor::full({c}, 1.0));
  num_batches_tracked = register_buffer("num_batches_tracked", Tensor::zeros({}, DType::I32));
}
Tensor BatchNorm2d::forward(const Tensor& x) const {
  if (is_training()) num_batches_tracked.data<int32_t>()[0] += 1;
  return batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum, eps);
}

namespace {
std::atomic<bool> g_fuse_bn_relu{true};
}  // namespace
void BatchNorm2d::set_fused_relu(bool on) { g_fuse_bn_relu.store(on); }
bool BatchNorm2d::fused_relu() { return g_fuse_bn_relu.load(); }

Tensor BatchNorm2d::forward_relu(const Tensor& x, const Tensor& residual, BnResidual at) const {
  if (!fused_relu()) {  // the same result through the separate ops
    if (at == BnResidual::BeforeRelu) return relu(add(forward(x), residual));
    const Tensor y = relu(forward(x));
    return at == BnResidual::AfterRelu ? add(y, residual) : y;
  }
  if (is_training()) num_batches_tracked.data<int32_t>()[0] += 1;
  return batch_norm_relu(x, weight, bias, running_mean, running_var, is_training(), momentum, eps, residual, at);
}

Tensor BatchNorm2d::gate(const Tensor& x, const Tensor& f) const {
  if (is_training()) num_batches_tracked.data<int32_t>()[0] += 1;
  return lka_gate(x, f, weight, bias, running_mean, running_var, is_training(), momentum, eps);
}

Linear::Linear(int64_t in, int64_t out, Rng& rng, bool has_bias) {
  weight = register_parameter("weight", Tensor::empty({out, in}));
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  uniform_(weight, bound, rng);
  if (has_bias) {
    bias = register_parameter("bias", Tensor::empty({out}));
    uniform_(bias, bound, rng);
  }
}
Tensor Linear::forward(const Tensor& x) const { return linear(x, weight, bias); }

}  // namespace lk
