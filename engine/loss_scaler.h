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
  explicit LossScaler(bool enabled) : LossScaler(enabled, Options{}) {}
  LossScaler(bool enabled, Options o);

  bool enabled() const { return enabled_; }
  double scale() const { return scale_; }
  int64_t skipped() const { return skipped_; }  // steps skipped so far

  // backward() from loss * scale() (loss: one element).
  void backward(const Tensor& loss) const;
  // The same with a hook per leaf whose gradient is complete (data-parallel
  // gradient buckets, engine/autograd.h).
  void backward(const Tensor& loss, const std::function<void(const Tensor&)>& on_leaf_ready) const;
  // Divides the gradients of `params` (those defined) by scale(); true when
  // all are finite (take the optimiser step), false when one is not (skip
  // it: the scale backs off and skipped() counts it). Disabled: true, no
  // work. One device-to-host read of one value per call.
  bool unscale(const std::vector<Tensor>& params);

 private:
  bool enabled_;
  Options o_;
  double scale_;
  int64_t good_ = 0, skipped_ = 0;
};

// "fp32", "bf16", "fp16" -> F32, BF16, F16 (std::invalid_argument naming the
// option otherwise), and back.
DType parse_precision(const std::string& s);
const char* precision_name(DType t);

}  // namespace lk
