// The small training run the trainer tests share (CPU, emulated CUDA,
// ranks): ResSE-LKA-UNet at widths 4-32, one warm-up epoch, AdamW lr 3e-3.
// Each test then sets what it is about (device, dtype, workers, hooks...).
#pragma once

#include "train/trainer.h"

namespace lk::test {

inline train::TrainConfig tiny_run(int epochs, int batch, int steps_per_epoch, int val_every) {
  train::TrainConfig c;
  c.net.arch = model::Arch::ResSELKAUNet;
  c.net.widths = {4, 8, 16, 32};
  c.epochs = epochs;
  c.batch = batch;
  c.steps_per_epoch = steps_per_epoch;
  c.val_every = val_every;
  c.warmup_epochs = 1;
  c.adamw.lr = 3e-3;
  return c;
}

}  // namespace lk::test
