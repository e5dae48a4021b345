// Checkpoints. Two safetensors files per checkpoint:
//   <path>                the model's state_dict (parameters and buffers under
//                         their PyTorch keys): `model.load_state_dict(
//                         safetensors.torch.load_file(path))` works (strict).
//   <path>.state          training state: AdamW moments per key ("adamw.m.<key>",
//                         "adamw.v.<key>"), and metadata: format tag, step,
//                         epoch, learning rate, the LR schedule, RNG state,
//                         the run's config.
// The weights file is a state_dict (engine/state_dict.h). Both are written
// atomically (engine/safetensors.h); the state file last,
// so a crash between the two leaves the previous state file unmatched and
// resuming refuses it (the step recorded in both must agree).
#pragma once

#include <map>
#include <string>

#include "engine/module.h"
#include "engine/state_dict.h"
#include "engine/optim.h"
#include "train/schedule.h"

namespace lk {

struct TrainState {
  int64_t step = 0;   // optimiser steps taken
  int64_t epoch = 0;  // epochs completed
  double lr = 0;
  LrSchedule schedule;
  std::string rng;     // serialised generator state (e.g. std::mt19937_64 via <<)
  std::string config;  // the run's configuration (JSON)
};

void save_checkpoint(const std::string& path, const Module& m, const AdamW& opt, const TrainState& st);
// Loads weights, buffers and optimiser moments; returns the training state.
TrainState load_checkpoint(const std::string& path, Module& m, AdamW& opt);

}  // namespace lk
