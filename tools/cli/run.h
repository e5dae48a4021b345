// What train, cv, predict and demo share (tools/cli/run.cpp): the run
// options and their flags, the split and slice cache of a run folder, one
// fold's training, the stop flag set by SIGINT/SIGTERM, loading a trained
// model and predicting one case into its original geometry.
//
// A run folder RUN holds run.json (the run's whole configuration: split,
// preprocessing, network and training; a rerun that changes any of it but
// --epochs is refused, naming the field, before anything is built),
// split.json (the case selection and folds: written once, honoured when
// edited), slices.lkcache (the selected cases only), fold_<k>/
// (train/trainer.h: config.json, checkpoints, best.safetensors, log.jsonl)
// and, after cv, cv_summary.json, predictions/, evaluation.* and table3.json.
// A folder holding anything else is refused unless --force. Every flag is
// checked before the cache is built. Every command resumes: a finished fold
// is skipped, an interrupted one (Ctrl-C, SIGTERM: the current step
// finishes and a checkpoint is written; exit 130) goes on from its last step.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/brats_cases.h"
#include "data/preprocess.h"
#include "data/slice_cache.h"
#include "data/splits.h"
#include "engine/tensor.h"
#include "model/networks.h"
#include "train/predict.h"
#include "train/trainer.h"

namespace CLI {
class App;
class Validator;
}

namespace lk::cli {

struct RunOptions {
  std::string data, out, split, cache;
  int fold = 0, folds = 5, threads = 0;
  double fraction = 0.1;
  bool skip_bad = false;
  bool force = false;    // write into a run folder that holds other files
  bool no_eval = false;  // cv: skip predicting and evaluating in the original grid
  // preprocessing
  int64_t size = 128;
  bool clahe = false;
  // network
  std::string net = "resse_lka_unet";
  std::vector<int64_t> widths{32, 64, 128, 256, 512};
  int64_t lka_dilation = 1;
  // protocol
  int64_t epochs = 50, batch = 8, val_every = 5, steps_per_epoch = 0, warmup_epochs = 5;
  double lr = 1e-4, weight_decay = 0.01, oversample = 0.0;
  uint64_t seed = 42;
  std::string device = "auto", augment_on = "auto";
  int workers = 0;
  int64_t log_every = 50;  // steps between loss reads (train/trainer.h)
  bool fast_nondeterministic = false;  // cuDNN's non-deterministic algorithms allowed (commands.h)
  bool tf32 = false;                   // TF32 in cuDNN convolutions (commands.h)
  std::string cuda_graph = "on";       // the step as a CUDA Graph on a GPU (commands.h)
};

// Registers the options of train (one_fold) and cv on `s`.
void add_run_options(CLI::App* s, RunOptions& o, bool one_fold);
// The trainer's configuration; throws for flags that cannot work together
// (naming them), before anything is read or written.
train::TrainConfig train_config(const RunOptions& o, Device dev);

// "must be a positive number, got -1" (CLI11's PositiveNumber prints its
// range up to DBL_MAX in full).
CLI::Validator positive_number();

// --seed: a whole number 0 .. 2^64-1 ("-1" is refused, not wrapped).
void add_seed_option(CLI::App* s, uint64_t& seed, const std::string& help);

// Throws when a network of `cfg` with `copies` float32 copies of its
// parameters (1: weights; 4: training with AdamW) cannot fit this machine's
// memory, saying how much it would need, before anything is allocated.
void check_network_memory(const model::NetConfig& cfg, int copies, const std::string& what);
// A lower bound of the parameter count (train/predict.h).
using train::min_parameters;

// The split (made once, then honoured) and the cache of the selected cases.
struct Prepared {
  data::Split split;
  data::SliceCache cache;
};
Prepared prepare(const RunOptions& o);

struct FoldOutcome {
  train::TrainResult result;
  std::string dir;
};
FoldOutcome run_fold(const RunOptions& o, const Prepared& p, int k, Device dev);

// Trains folds first..last (train: one, cv: all), prints the validation
// summary and (all folds) writes RUN/cv_summary.json. Returns 130 when
// stopped by a signal, else 0.
int train_folds(const RunOptions& o, const Prepared& p, bool all_folds, Device dev);

// Ctrl-C and SIGTERM (util/interrupt.h; lkaseg.cpp installs the handlers
// for every command): training stops after the current step with a
// checkpoint, other phases end at once with their temporary files removed.
void install_stop_handlers();

// Loading models (any checkpoint a run wrote; NaN weights and metadata
// larger than the file refused) lives in train/predict.h.
using train::LoadedModel;
using train::load_model;

// A predictions folder (predict --out, RUN/predictions): created, or checked
// to hold only lkaseg predictions (and predict's probabilities/ folder)
// unless `force` (tools/cli/output_guard.h).
void prepare_prediction_folder(const std::string& dir, bool force);

// train::predict_case_file (one case: load, preprocess as in training,
// predict with one model or the mean of several, map back to the original
// grid, post-process, write <out_dir>/<id>.nii.gz in the case's label
// coding), except that a file there that is not an lkaseg prediction (or
// probability map) is never overwritten.
train::CasePrediction predict_case_file(const std::vector<model::SegNet*>& nets, const data::PreprocessOptions& po,
                                        const data::BratsCase& bc, const std::string& out_dir,
                                        const train::CasePredictOptions& o);
void predict_case_file(model::SegNet& net, const data::PreprocessOptions& po, const data::BratsCase& bc,
                       const std::string& out_dir, int64_t batch, Device dev);

}  // namespace lk::cli
