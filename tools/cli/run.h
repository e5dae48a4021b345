// What train, cv, predict and demo share (tools/cli/run.cpp): the run
// options and their flags, the split and slice cache of a run folder, one
// fold's training, the stop flag set by SIGINT/SIGTERM, loading a trained
// model and predicting one case into its original geometry.
//
// A run folder RUN holds run.json (the run's whole configuration: split,
// --cases included, preprocessing, network and training; a rerun that changes
// any of it but --epochs is refused, naming the field, before anything is
// built), split.json (the case selection and folds: written once, honoured
// when edited; with --cases it must select among those cases, and all of them
// with --fraction 1), slices.lkcache (the selected cases only), fold_<k>/
// (train/trainer.h: config.json, checkpoints, best.safetensors, log.jsonl)
// and, after cv, cv_summary.json, predictions/, evaluation.* and table3.json.
// A folder holding anything else is refused unless --force. Every flag is
// checked before the cache is built. Every command resumes: a finished fold
// is skipped, an interrupted one (Ctrl-C, SIGTERM: the current step
// finishes and a checkpoint is written; exit 130) goes on from its last step.
//
// Data-parallel: train and cv started by mpirun / srun with N > 1 ranks run
// on the ranks (run_on_ranks): rank 0 prepares the split and the cache first,
// then the others read them; each fold trains on all ranks; rank 0 alone
// prints and writes (the other ranks' stdout goes to /dev/null, their errors
// still show). An error on any rank ends the whole job (MPI_Abort) with the
// message, naming the rank. cv --parallel-folds / --devices instead trains
// several folds at once, one child process each (train_folds_in_parallel).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/brats_cases.h"
#include "data/preprocess.h"
#include "data/slice_cache.h"
#include "data/splits.h"
#include "engine/dist.h"
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
  std::vector<std::string> cases;  // --cases: only these case ids of --data (empty: all)
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
  std::string oversample_by = "tumour";  // tumour: any tumour slice; class: a class first (data/loader.h)
  uint64_t seed = 42;
  std::string device = "auto", augment_on = "auto";
  std::string precision = "fp32";  // fp32, bf16, fp16 (activations; CUDA only for the last two)
  int workers = 0;
  int64_t log_every = 50;  // steps between loss reads (train/trainer.h)
  // data-parallel ranks (mpirun / srun)
  bool sync_bn = false;
  std::string comm = "auto";   // auto (NCCL for GPU ranks when built), mpi, nccl (also with one rank)
  std::string dtype = "f32";   // f64: double precision on the CPU (checks)
  // cv: folds trained at once, one child process each (CPU), or one per device listed
  int parallel_folds = 0;
  std::vector<std::string> devices;
  bool fast_nondeterministic = false;  // cuDNN's non-deterministic algorithms allowed (commands.h)
  bool tf32 = false;                   // TF32 in cuDNN convolutions (commands.h)
  std::string cuda_graph = "on";       // the step as a CUDA Graph on a GPU (commands.h)
};

// --precision bf16/fp16 on a device other than CUDA: std::invalid_argument.
void check_precision(const RunOptions& o, Device dev);

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
// writer false (data-parallel ranks but rank 0): only reads what rank 0's
// prepare made; no folder is cleaned, no file written.
Prepared prepare(const RunOptions& o, bool writer = true);

struct FoldOutcome {
  train::TrainResult result;
  std::string dir;
};
FoldOutcome run_fold(const RunOptions& o, const Prepared& p, int k, Device dev, dist::Communicator* comm = nullptr);

// Trains folds first..last (train: one, cv: all), prints the validation
// summary and (all folds) writes RUN/cv_summary.json. Returns 130 when
// stopped by a signal, else 0. With comm, on its ranks (rank 0 writes).
int train_folds(const RunOptions& o, const Prepared& p, bool all_folds, Device dev,
                dist::Communicator* comm = nullptr);

// This process's part of a train/cv run: its communicator (single process
// without a launcher; MPI under mpirun/srun with N > 1 ranks; NCCL for GPU
// ranks when built, or with --comm nccl) and its device (`auto`/`cuda` on a
// node with several ranks: cuda:<local rank modulo the GPUs>).
struct Ranks {
  dist::Launch launch;
  std::unique_ptr<dist::Communicator> comm;  // never null
  Device device;
  bool lead() const { return comm->rank() == 0; }
};
// Runs `body` (resolves the device, then prepare, train, ...) on this rank:
// starts the ranks (refusing N > 1 ranks without MPI in this build, or
// --parallel-folds under mpirun), sets the OpenMP threads of each rank (its
// share of the cores, unless OMP_NUM_THREADS says), runs prepare on rank 0
// before the others (prepare_all), and ends the whole job on an error.
int run_on_ranks(const RunOptions& o, const std::function<int(Ranks&)>& body);
// prepare() on rank 0, then on the others (which find the split and cache made).
Prepared prepare_all(const RunOptions& o, Ranks& r);

// cv --parallel-folds N / --devices LIST: every fold not yet finished trained
// by a child `lkaseg train --fold k ...` (the same options, its own device,
// its share of the cores), at most N (or one per device) at a time, output
// in RUN/fold_<k>/train.out; then the parent's own train_folds finds them
// trained and prints the summary. Ctrl-C reaches the children (they stop
// with a checkpoint; exit 130); SIGTERM to the parent is passed on to them.
// Returns 130 when stopped, 1 when a fold failed, else 0.
int train_folds_in_parallel(const RunOptions& o, const Prepared& p);
// The command line this process was started with (main sets it), which the
// children of train_folds_in_parallel copy.
extern std::vector<std::string> g_argv;

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
