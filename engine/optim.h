// Optimisers over a list of parameters; step() reads each parameter's grad
// (parameters that received no gradient are skipped, as in PyTorch).
#pragma once

#include <vector>

#include "engine/tensor.h"

namespace lk {

class Optimizer {
 public:
  // Gives the parameters their gradient arena (grad_arena, engine/autograd.h).
  explicit Optimizer(std::vector<Tensor> params);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad();  // drops the gradients: the next backward overwrites their buffers
  void set_lr(double lr) { lr_ = lr; }
  double lr() const { return lr_; }
  const std::vector<Tensor>& params() const { return params_; }

 protected:
  std::vector<Tensor> params_;
  double lr_ = 1e-3;
};

// Plain SGD with optional (PyTorch-style) momentum; host tensors only.
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, double lr, double momentum = 0.0);
  void step() override;

 private:
  double momentum_;
  std::vector<Tensor> velocity_;
};

// The state array of an AdamW step on device `d` (kernels/adamw.h: lr, the
// step count, the scalars each step derives), with `steps_done` steps taken.
Tensor adamw_state(Device d, double lr, int64_t steps_done);

// torch.optim.AdamW: p -= lr*wd*p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps). Runs on the
// parameters' device through its backend (on CUDA: two launches, nothing
// copied or awaited). lr and t live in a state array on that device
// (adamw_state): step() first writes lr there if set_lr changed it (one
// launch, upload_lr), then the device advances t and derives the bias
// corrections itself, so a step can be captured and replayed.
class AdamW : public Optimizer {
 public:
  struct Options {
    double lr = 1e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-5, weight_decay = 0.01;
  };
  AdamW(std::vector<Tensor> params, Options o);
  void step() override;
  // Steps taken. With a skip flag, the device's count (skipped steps do not
  // count): a read from the device, i.e. a wait (checkpoints); else the host's.
  int64_t steps() const;
  const Options& options() const { return o_; }
  // float16 loss scaling (engine/loss_scaler.h): `flag` (one float32 element
  // on the parameters' device, or undefined for none) is read by the device
  // as each step runs; when it is not 0 the step is skipped there.
  void skip_if(Tensor flag);
  // step() calls counted on the host (skipped ones too), and their reset
  // (engine/step_graph.h: a capture that failed ran nothing on the device).
  int64_t step_calls() const { return t_; }
  void set_step_calls(int64_t t) { t_ = t; }

  // The moments, in parameter order, and the step count: for checkpoints.
  const std::vector<Tensor>& first_moments() const { return m_; }
  const std::vector<Tensor>& second_moments() const { return v_; }
  void set_steps(int64_t t);  // writes the device state too (a copy from the host)

  // Writes lr into the device state if it differs from the last value written.
  void upload_lr();
  // A replayed graph (engine/step_graph.h) took a step on the device: count
  // it on the host too (the device advanced its own count).
  void count_replayed_step() { ++t_; }
  const Tensor& state() const { return state_; }

 private:
  Options o_;
  int64_t t_ = 0;
  std::vector<Tensor> m_, v_;
  Tensor state_;            // adamw_state on the parameters' device
  Tensor skip_;             // skip_if's flag, or undefined
  double lr_on_device_ = 0;  // what state_ holds
};

}  // namespace lk
