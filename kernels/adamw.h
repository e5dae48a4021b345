// AdamW update of one tensor, exactly torch.optim.AdamW (decoupled weight
// decay, bias correction, eps outside the square root of v_hat):
//   p -= lr * wd * p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// The CUDA twin (kernels/cuda/adamw.h) updates every tensor in one launch.
#pragma once

#include "kernels/common.h"
#include "kernels/params.h"

namespace lk::cpu {

template <typename T>
void adamw_update(const AdamWParams& a, i64 step, i64 n, T* p, const T* g, T* m, T* v);

// adamw_update of many tensors in one parallel region: their elements, taken
// as one range, are split evenly over the threads (one fork-join per step
// instead of one per tensor; a network has hundreds of tensors, most tiny,
// and each fork-join costs a time slice when the cores are shared).
// Each element gets adamw_update's arithmetic.
template <typename T>
struct AdamWTensor {
  i64 n;
  T* p;
  const T* g;
  T* m;
  T* v;
};
template <typename T>
void adamw_update_multi(const AdamWParams& a, i64 step, const AdamWTensor<T>* tensors, i64 count);

// The per-step scalars of an AdamW optimiser, kept in one float64 array on
// the parameters' device, so that a step takes nothing from the host
// (engine/optim.h; the CUDA kernels read it, a captured step can replay):
//   [kAdamWLr]    the learning rate, written by the host when it changes
//   [kAdamWStep]  the step count t, incremented by every step (0 before the first)
//   [kAdamWDecay]     1 - lr * weight_decay   (derived by each step from the two above)
//   [kAdamWStepSize]  lr / (1 - beta1^t)
//   [kAdamWSqrtBc2]   sqrt(1 - beta2^t)
//   [kAdamWSkipped]   1 when the last step was skipped (its skip flag was set), else 0
enum AdamWSlot : int {
  kAdamWLr,
  kAdamWStep,
  kAdamWDecay,
  kAdamWStepSize,
  kAdamWSqrtBc2,
  kAdamWSkipped,
  kAdamWStateSize
};

// Advances the state by one step (t += 1) and derives its scalars, in double,
// exactly as adamw_update does from (lr, t). With a skip flag (one float on
// the state's device: float16 loss scaling's overflow, kernels/loss_scale.h)
// that is not 0 the step is skipped instead: t and the scalars stay, the
// parameters and moments are not to be updated. Returns whether to update.
bool adamw_advance(double* state, double beta1, double beta2, double weight_decay, const float* skip = nullptr);

}  // namespace lk::cpu
