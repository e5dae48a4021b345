// Dynamic loss scaling for float16 mixed precision (--precision fp16).
//
// float16 keeps 5 exponent bits: activation gradients below 2^-24 flush to
// zero. The backward pass therefore starts from loss * S (S = 2^16 at
// first), and the float32 parameter gradients are divided by S before the
// optimiser step. When a gradient is not finite (the scaled backward
// overflowed float16's 65504) the step is skipped and S halves; after
// `interval` good steps in a row S doubles. bfloat16 has float32's exponent
// range and float32 needs nothing: a disabled scaler has S = 1 and never
// skips. Checkpoints do not keep S (a resumed fp16 run starts from the
// initial scale and may skip a few steps to find it again).
//
// Every decision is made on the device, in the order of its stream: S, 1/S,
// the clean-step and skipped-step counts and the overflow flag live in one
// float32 array there (kernels/loss_scale.h); the backward seeds from S,
// unscale() is one backend op (Backend::grad_unscale: on CUDA one launch over
// every gradient that multiplies by 1/S and flags a NaN or an infinity,
// then a one-thread launch that updates the array), and the optimiser reads
// the flag (AdamW::skip_if) and skips the step on the device. A float16 step
// thus reads nothing back and is captured in a CUDA Graph like the others;
// the host reads S and the skipped count only when it asks (scale(),
// skipped(): a wait each).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "engine/tensor.h"

namespace lk {

class LossScaler {
 public:
  struct Options {
    double init_scale = 65536.0;
    double growth = 2.0;    // after `interval` steps without overflow
    double backoff = 0.5;   // after an overflow
    int64_t interval = 2000;
  };
  // The state lives on `device` (the parameters' and the loss's device).
  explicit LossScaler(bool enabled, Device device = cpu_device()) : LossScaler(enabled, Options{}, device) {}
  LossScaler(bool enabled, Options o, Device device = cpu_device());

  bool enabled() const { return enabled_; }
  // Read from the device (a wait for it); 1 and 0 when disabled.
  double scale() const;
  int64_t skipped() const;  // steps skipped so far

  // One float32 element on the device: 1 after an unscale() that found a
  // gradient not finite, else 0. Undefined when disabled. Hand it to the
  // optimiser (AdamW::skip_if) so that it skips that step.
  Tensor found_inf() const;

  // backward() from loss * scale() (loss: one float32 element on the device).
  void backward(const Tensor& loss) const;
  // The same with a hook per leaf whose gradient is complete (data-parallel
  // gradient buckets, engine/autograd.h).
  void backward(const Tensor& loss, const std::function<void(const Tensor&)>& on_leaf_ready) const;
  // Divides the gradients of `params` (those defined) by scale(), then
  // decides on the device: a gradient element not finite after the division
  // (a NaN or an infinity; kernels/loss_scale.h) sets found_inf(), halves
  // the scale and counts a skipped step; else the clean steps count towards
  // doubling it. Disabled: no work. No read back to the host.
  void unscale(const std::vector<Tensor>& params);

 private:
  Tensor seed(const Tensor& loss) const;

  bool enabled_;
  Options o_;
  Tensor state_;  // kernels/loss_scale.h, float32 on the device (enabled only)
};

// "fp32", "bf16", "fp16" -> F32, BF16, F16 (std::invalid_argument naming the
// option otherwise), and back.
DType parse_precision(const std::string& s);
const char* precision_name(DType t);

}  // namespace lk
