// Dynamic loss scaling's per-step work (engine/loss_scaler.h), done on the
// parameters' device so that a float16 step reads nothing back to the host and
// can be captured in a CUDA Graph. One float32 state array holds:
//   [kLossScale]          S, the factor the backward pass starts from
//   [kLossScaleInv]       1 / S, by which the gradients are unscaled
//   [kLossScaleGood]      steps without overflow since S last changed
//   [kLossScaleSkipped]   steps skipped so far (an overflow each)
//   [kLossScaleFoundInf]  1 when the last step's gradients were not finite
//                         (its optimiser step is skipped: kernels/adamw.h), else 0
//   [kLossScaleNonFinite] the unscale's flag: 0 between steps; grad_unscale
//                         sets it to 1, loss_scale_update reads and clears it
// A step is grad_unscale, then loss_scale_update. grad_unscale multiplies
// every gradient element by 1/S in place and sets the flag when a product is
// not finite: a NaN or an infinity anywhere in the gradients (found exactly,
// whatever the other values), or a finite value that 1/S (> 1 once S has
// backed off below 1) carries past float32's largest. A flag, not a sum:
// finite gradients are never reported because their sum would overflow.
// loss_scale_update then decides: an overflow halves S (backoff) and counts
// a skipped step; `interval` clean steps in a row double it (growth), unless
// S would no longer be a finite float. The CPU backend runs these functions
// as they are; the CUDA twins (kernels/cuda/loss_scale.h) run grad_unscale
// as one multi-tensor launch and loss_scale_update in a one-thread kernel.
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
  kLossScaleNonFinite,
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

// The decision from s[kLossScaleNonFinite], which it clears for the next step.
LK_LOSS_SCALE_HD void loss_scale_update(const LossScaleParams& p, float* s) {
  const bool overflow = s[kLossScaleNonFinite] != 0.0f;
  s[kLossScaleNonFinite] = 0.0f;
  if (!overflow) {
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

// grads[i][0, numel[i]) *= s[kLossScaleInv] for i < count, in place; sets
// s[kLossScaleNonFinite] to 1 when a product is not finite (never clears it).
// OpenMP over chunks of all the tensors together (one parallel region).
void grad_unscale(float* const* grads, const int64_t* numel, int64_t count, float* s);

}  // namespace lk::cpu
