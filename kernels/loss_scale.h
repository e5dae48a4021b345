// Dynamic loss scaling's per-step decision (engine/loss_scaler.h), made on the
// parameters' device so that a float16 step reads nothing back to the host and
// can be captured in a CUDA Graph. One float32 state array holds:
//   [kLossScale]         S, the factor the backward pass starts from
//   [kLossScaleInv]      1 / S, by which the gradients are unscaled
//   [kLossScaleGood]     steps without overflow since S last changed
//   [kLossScaleSkipped]  steps skipped so far (an overflow each)
//   [kLossScaleFoundInf] 1 when the last step's gradients were not finite
//                        (its optimiser step is skipped: kernels/adamw.h), else 0
// After the gradients are unscaled, `total` (a sum over every gradient, not
// finite iff one element is not) decides: an overflow halves S (backoff) and
// counts a skipped step; `interval` clean steps in a row double it (growth),
// unless S would no longer be a finite float. The CPU backend runs this
// function as it is; the CUDA twin (kernels/cuda/loss_scale.h) runs it in a
// one-thread kernel.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define LK_LOSS_SCALE_HD __host__ __device__ __forceinline__
#else
#define LK_LOSS_SCALE_HD inline
#endif

namespace lk::cpu {

enum LossScaleSlot : int {
  kLossScale,
  kLossScaleInv,
  kLossScaleGood,
  kLossScaleSkipped,
  kLossScaleFoundInf,
  kLossScaleStateSize
};

struct LossScaleParams {
  float growth = 2.0f;   // after `interval` steps without overflow
  float backoff = 0.5f;  // after an overflow
  int32_t interval = 2000;
};

// x - x is 0 for a finite x and NaN for an infinity or a NaN (IEEE; the
// project builds without fast-math): no isfinite overload to pick per compiler.
LK_LOSS_SCALE_HD bool loss_scale_finite(float x) { return x - x == 0.0f; }

LK_LOSS_SCALE_HD void loss_scale_update(const LossScaleParams& p, float total, float* s) {
  if (loss_scale_finite(total)) {
    s[kLossScaleFoundInf] = 0.0f;
    s[kLossScaleGood] += 1.0f;
    if (s[kLossScaleGood] >= static_cast<float>(p.interval)) {
      const float grown = s[kLossScale] * p.growth;
      if (loss_scale_finite(grown)) s[kLossScale] = grown;
      s[kLossScaleGood] = 0.0f;
    }
  } else {
    s[kLossScaleFoundInf] = 1.0f;
    s[kLossScale] *= p.backoff;
    s[kLossScaleGood] = 0.0f;
    s[kLossScaleSkipped] += 1.0f;
  }
  s[kLossScaleInv] = 1.0f / s[kLossScale];
}

}  // namespace lk::cpu
