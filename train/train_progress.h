// The live progress of a training run (lkaseg train/cv), kept apart from
// the trainer's loop: the trainer calls begin_epoch(), step() after every
// optimiser step, validated() after a validation and end_epoch().
//
// Inside each epoch one line (util/progress.h): the step within the epoch,
// steps/s, the epoch's ETA, the mean loss of the epoch so far and the ETA of
// the whole run (the remaining steps at this process's rate, plus the
// remaining validations at their measured duration). On a terminal a bar
// redrawn in place; elsewhere a plain line each tenth of an epoch or every
// 30 s. Printed to `out` (nullptr: nothing; the trainer's epoch summary
// lines are its own).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "util/progress.h"

namespace lk::train {

class TrainProgress {
 public:
  // `start_step` steps were taken before this process (a resumed run);
  // validations every `val_every` epochs and after the last.
  TrainProgress(std::FILE* out, int64_t epochs, int64_t steps_per_epoch, int64_t val_every, int64_t start_step);
  ~TrainProgress();
  TrainProgress(const TrainProgress&) = delete;
  TrainProgress& operator=(const TrainProgress&) = delete;

  void begin_epoch(int64_t epoch);  // 1-based
  // One optimiser step; `loss` NaN when it was not read at this step.
  void step(double loss);
  void validated(double seconds);
  void end_epoch();
  // A message that does not break the line.
  void note(const std::string& line);

  // "3h12m" or "?": the remaining run at the rates measured so far.
  std::string run_eta() const;

 private:
  std::FILE* out_;
  const int64_t epochs_, spe_, val_every_;
  int64_t step_;           // global steps taken
  int64_t steps_here_ = 0;  // in this process
  double loss_sum_ = 0;
  int64_t loss_n_ = 0;
  double val_seconds_ = 0;
  int64_t vals_ = 0;
  std::chrono::steady_clock::time_point t0_;
  std::unique_ptr<Progress> epoch_;
};

}  // namespace lk::train
