// Learning-rate schedule of SPEC.md (paper Table 2, our reading): linear
// warmup over the first `warmup_epochs` epochs, per step, from
// base*start_factor to base; then base * decay^(epoch - warmup_epochs).
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>

namespace lk {

struct LrSchedule {
  double base_lr = 1e-4;
  int64_t warmup_epochs = 5;
  double start_factor = 0.1;
  double decay = 0.95;
  int64_t steps_per_epoch = 1;

  // step counts from 0 over the whole run.
  double lr_at(int64_t step) const {
    if (steps_per_epoch < 1 || step < 0) throw std::invalid_argument("LrSchedule: steps_per_epoch >= 1, step >= 0");
    const int64_t epoch = step / steps_per_epoch;
    if (epoch < warmup_epochs) {
      const double t = static_cast<double>(step) / static_cast<double>(warmup_epochs * steps_per_epoch);
      return base_lr * (start_factor + (1.0 - start_factor) * t);
    }
    return base_lr * std::pow(decay, static_cast<double>(epoch - warmup_epochs));
  }
};

}  // namespace lk
