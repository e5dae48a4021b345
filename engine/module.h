// Modules: named parameters and buffers in a tree, PyTorch state_dict style.
// A parameter's key is the dotted path of its owners plus its own name, e.g.
// "enc.0.res.conv1.weight"; those keys are the checkpoint keys.
// Layers initialise as PyTorch's defaults, from a caller-supplied seeded RNG.
#pragma once

#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/ops.h"

namespace lk {

using Rng = std::mt19937_64;

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Parameters (require grad) and buffers (running stats), with full keys.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  std::vector<Tensor> parameters() const;
  int64_t parameter_count() const;

  // Converts every floating parameter and buffer in place (handles held
  // elsewhere see the change): float64 for gradient checks and references.
  void cast_(DType dtype);
  // Moves every parameter and buffer to `device` in place, like cast_.
  void to_device(Device device);

  void train(bool on = true);
  bool is_training() const { return training_; }
  void zero_grad();

 protected:
  Tensor& register_parameter(const std::string& name, Tensor t);
  Tensor& register_buffer(const std::string& name, Tensor t);
  template <typename M>
  M& register_module(const std::string& name, std::unique_ptr<M> m) {
    M& ref = *m;
    children_.emplace_back(name, std::move(m));
    return ref;
  }

 private:
  void collect(const std::string& prefix, bool params, std::vector<std::pair<std::string, Tensor>>& out) const;
  std::vector<std::pair<std::string, Tensor>> params_, buffers_;
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
  bool training_ = true;
};

// A numbered list of child modules, named "0", "1", ... as nn.ModuleList.
class ModuleList : public Module {
 public:
  template <typename M>
  M& add(std::unique_ptr<M> m) {
    M& ref = register_module(std::to_string(size_), std::move(m));
    ++size_;
    return ref;
  }
  size_t size() const { return size_; }

 private:
  size_t size_ = 0;
};

// Uniform(-bound, bound) fill, deterministic for a given RNG state.
void uniform_(Tensor& t, double bound, Rng& rng);

class Conv2d : public Module {
 public:
  Conv2d(int64_t c_in, int64_t c_out, int64_t k, Rng& rng, Conv2dOptions o = {}, bool bias = true);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;
  Conv2dOptions opts;
};

class ConvTranspose2d : public Module {
 public:
  ConvTranspose2d(int64_t c_in, int64_t c_out, int64_t k, int64_t stride, Rng& rng, bool bias = true);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;
  int64_t stride;
};

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t c, double momentum = 0.1, double eps = 1e-5);
  Tensor forward(const Tensor& x) const;
  // x * sigmoid(this(f)) in one op (the LKA tail), same statistics handling.
  Tensor gate(const Tensor& x, const Tensor& f) const;
  // relu(this(x)), relu(this(x)) + residual or relu(this(x) + residual) by
  // `at` (engine/ops.h batch_norm_relu), in one op; with fusion switched off
  // (set_fused_relu(false), process-wide: for comparisons) the separate
  // batch_norm, relu and add.
  Tensor forward_relu(const Tensor& x, const Tensor& residual = {}, BnResidual at = BnResidual::None) const;
  static void set_fused_relu(bool on);
  static bool fused_relu();
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  double momentum, eps;
};

class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, Rng& rng, bool bias = true);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;
};

}  // namespace lk
