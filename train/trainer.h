// Training one fold with the paper's protocol (SPEC.md, "Training"): the
// background loader (data/loader.h) over the fold's training slices,
// deep-supervision CE + adaptive Tversky, AdamW, linear warmup then
// exponential decay per epoch, validation every `val_every` epochs with the
// best checkpoint kept by the mean Dice over NCR, ET and ED.
//
// A run lives in one folder:
//   config.json            the run's configuration (TrainConfig::to_json plus
//                          the preprocessing of the cache it trains on),
//                          written once everything was checked
//   last.json, last-<step>.safetensors(.state)  the newest checkpoint
//                          generation (train/checkpoint.h: weights + AdamW
//                          moments + position), written at every epoch end
//                          and on a stop; the weights file is a state_dict
//                          that `lkaseg predict` also takes
//   best.safetensors       the weights of the best validation so far (its
//                          metadata: epoch, Dice, the network and
//                          preprocessing configuration for `lkaseg predict`)
//   log.jsonl              one JSON object per finished epoch (rewritten
//                          atomically, so never a torn line; train/run_log.h)
// Order at an epoch end: best.safetensors, log.jsonl, then the checkpoint,
// so whatever generation a crash leaves, the files agree with it.
// Resuming: train_fold loads the newest complete generation and goes on from
// the step it records - mid-epoch included, since the loader can start at any
// batch and its batches depend only on (seed, epoch, index) - so a resumed
// run takes the same steps as an uninterrupted one. A run folder whose
// config.json differs in anything but `epochs` is refused (naming the field
// and both values) rather than silently mixed.
//
// Data-parallel (TrainHooks::comm of N ranks, engine/dist.h): `batch` is each
// rank's share; the loader gives every rank its rows of each global batch of
// N*batch, the ops reduce the batch statistics (loss normalisation; batch
// norm with sync_bn) and GradSync sums the gradients, so the ranks take the
// steps one process would take at batch N*batch (exactly, in exact
// arithmetic, with sync_bn) and their replicas stay identical (checked at
// every epoch end). Rank 0 alone logs, validates and writes the files; the
// others wait for it at the epoch end without spinning. config.json records
// the rank count (and sync_bn), and a folder is resumed only with the same.
//
// Validation (our reading): every validation case is predicted slice by
// slice (eval mode, argmax of the main output) on the cache grid, and Dice
// per class is computed in 3-D over the case's stacked slices (both empty:
// 1); the case means per class and their mean select the best checkpoint.
// The paper's final numbers come from `lkaseg predict` + `lkaseg evaluate`
// in the original voxel grid.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "data/loader.h"
#include "data/slice_cache.h"
#include "engine/dist.h"
#include "engine/optim.h"
#include "model/loss.h"
#include "model/networks.h"
#include "train/run_log.h"

namespace lk::train {

struct TrainConfig {
  model::NetConfig net;
  model::LossConfig loss;
  int64_t epochs = 50, batch = 8;
  AdamW::Options adamw;  // lr 1e-4, betas (0.9, 0.999), eps 1e-5, weight decay 0.01
  int64_t warmup_epochs = 5;
  double warmup_start = 0.1, decay = 0.95;
  int64_t val_every = 5;        // and always after the last epoch
  int64_t steps_per_epoch = 0;  // 0: one pass over the training slices
  double tumour_fraction = 0.0;  // loader oversampling (not in the paper)
  bool oversample_by_class = false;  // ... of a class first, then a slice holding it (data/loader.h)
  uint64_t seed = 42;            // loader order and augmentation (the net has net.seed)
  data::AugmentOn augment_on = data::AugmentOn::Auto;
  int workers = 0;
  int64_t eval_batch = 16;
  bool sync_bn = false;  // data-parallel: batch-norm statistics over all ranks' batches
  DType dtype = DType::F32;  // F64: in double precision on the CPU (to check exactness, e.g. over ranks)
  Device device = cpu_device();
  // Activations: fp32 (the paper), bf16 or fp16 (the CUDA backend; fp16
  // with dynamic loss scaling, engine/loss_scaler.h). Weights, optimiser
  // state, BN statistics, loss and checkpoints stay float32.
  DType precision = DType::F32;
  // fp16: the dynamic loss scaler's first scale (LossScaler::Options).
  double loss_scale = 65536.0;
  // Steps between loss read-backs (a progress line each; 0: only at epoch
  // ends). The loss is summed on the device in between, so a step never
  // waits for the device; divergence (a non-finite loss) is caught at the
  // next read.
  int64_t log_every = 50;
  // On a device with graphs (CUDA), the step is captured once as a CUDA
  // Graph and replayed (engine/step_graph.h); false: every step eager. The
  // results are the same either way. Data-parallel runs (hooks.comm) stay
  // eager, saying so; fp16's loss scaler decides on the device and replays too.
  bool cuda_graph = true;

  // everything above but device, workers, augment_on, log_every, cuda_graph (they do not change results)
  std::string to_json() const;
  static TrainConfig from_json(const std::string& json);  // throws on a malformed or incomplete one
};

// ValidationResult and EpochLog: train/run_log.h (log.jsonl).

struct TrainResult {
  std::vector<EpochLog> log;  // the whole run's, resumed epochs included
  int64_t best_epoch = 0;     // 0: no validation yet
  double best_dice = -1;
  bool stopped = false;       // a stop request ended it early (checkpoint written)
  int64_t resumed_from_step = -1;  // -1: a fresh run
};

struct TrainHooks {
  // Asked between steps; true stops after writing a checkpoint.
  const std::atomic<bool>* stop = nullptr;
  std::function<void(const std::string&)> log;  // progress lines; may be empty
  // The live progress inside epochs (train/train_progress.h); nullptr: none.
  std::FILE* progress = nullptr;
  // Data-parallel training: this process is comm->rank() of comm->size()
  // (null or one rank: a single process). The stop request is agreed on by
  // all ranks at each step.
  dist::Communicator* comm = nullptr;
};

// Throws std::invalid_argument for a configuration that cannot train on
// slices of `side` px: bad numbers, too few levels, a side not divisible by
// 2^(levels-1), or batch norm left one value per channel at the coarsest
// level. train_fold checks this before writing anything.
void check_trainable(const TrainConfig& c, int64_t side);

// Two configurations as JSON objects: "" when they agree in everything but a
// top-level "epochs", else "'<dotted field>' differs: <then> then, <now> now".
std::string config_difference(const std::string& then, const std::string& now);

// The preprocessing options as JSON (kept in best.safetensors' metadata so
// `lkaseg predict` preprocesses new cases the same way), and back.
std::string preprocess_to_json(const data::PreprocessOptions& o);
data::PreprocessOptions preprocess_from_json(const std::string& json);

// Trains on the slices of `train_ids`, validates on `val_ids` (cases of
// `cache` with labels). Writes into `run_dir` (created).
TrainResult train_fold(const TrainConfig& cfg, const data::SliceCache& cache,
                       const std::vector<std::string>& train_ids, const std::vector<std::string>& val_ids,
                       const std::string& run_dir, const TrainHooks& hooks = {});

// Dice per class (NCR, ET, ED) and their mean, averaged over the cases.
// With `stop` given, it is checked between cases: once set, nothing is
// returned (a partial mean would not be the epoch's).
std::optional<ValidationResult> validate(model::SegNet& net, const data::SliceCache& cache,
                                         const std::vector<std::string>& val_ids, int64_t batch, Device dev,
                                         const std::atomic<bool>* stop = nullptr);

}  // namespace lk::train
