// Shared by train, cv, predict and demo (tools/cli/run.h).
#include "tools/cli/run.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>


#include "data/nifti_validate.h"
#include "data/nifti_write.h"
#include "engine/loss_scaler.h"
#include "engine/safetensors.h"
#include "engine/state_dict.h"
#include "tools/cli/commands.h"
#include "tools/cli/output_guard.h"
#include "train/checkpoint.h"
#include "util/atomic_file.h"
#include "util/interrupt.h"

namespace lk::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::vector<std::string> g_argv;

void install_stop_handlers() { install_interrupt_handlers(); }

CLI::Validator positive_number() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        try {
          size_t used = 0;
          const double x = std::stod(v, &used);
          if (used == v.size() && std::isfinite(x) && x > 0) return "";
        } catch (const std::exception&) {
        }
        return "must be a positive number, got " + v;
      },
      "POSITIVE");
}

void add_seed_option(CLI::App* s, uint64_t& seed, const std::string& help) {
  s->add_option("--seed", seed, help)
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            const bool digits = !v.empty() && v.size() <= 20 && std::all_of(v.begin(), v.end(), ::isdigit);
            if (digits && (v.size() < 20 || v <= "18446744073709551615")) return "";
            return "must be a whole number from 0 to 18446744073709551615, got " + v;
          },
          "UINT64"))
      ->capture_default_str();
}

void add_run_options(CLI::App* s, RunOptions& o, bool one_fold) {
  s->add_option("--data", o.data, "folder of BraTS case folders")->required()->check(CLI::ExistingDirectory);
  s->add_option("--out", o.out, "run folder (run.json, split.json, slices.lkcache, fold_<k>/)")->required();
  if (one_fold) s->add_option("--fold", o.fold, "the fold to train (0-based)")->check(CLI::Range(0, 99))->capture_default_str();
  else o.fold = -1;  // every fold
  s->add_option("--folds", o.folds, "number of folds")->check(CLI::Range(2, 100))->capture_default_str();
  s->add_option("--fraction", o.fraction, "fraction of the cases selected (SPEC: 10%)")
      ->check(CLI::Range(1e-9, 1.0))
      ->capture_default_str();
  s->add_option("--cases", o.cases,
                 "only these cases of --data (ids as discovery names them: the case folder, e.g. BraTS2021_00006; "
                 "MSD: the image file name without .nii.gz); --fraction then draws from them (1: all of them). An id "
                 "not there or given twice is an error; recorded in run.json (a rerun must name the same cases); an "
                 "existing split must select among them (all of them with --fraction 1)");
  s->add_option("--split", o.split, "split JSON (default RUN/split.json; written when absent, honoured when present)");
  s->add_option("--cache", o.cache, "slice cache (default RUN/slices.lkcache)");
  s->add_option("--threads", o.threads, "preprocessing workers (0: all cores)")->check(CLI::Range(0, 4096))->capture_default_str();
  s->add_flag("--skip-bad", o.skip_bad, "skip bad cases (listed) instead of failing");
  s->add_flag("--force", o.force, "write into a run folder that holds files lkaseg did not write (never over them)");
  s->add_option("--size", o.size, "slice side")->check(CLI::Range(16, 4096))->capture_default_str();
  s->add_flag("--clahe", o.clahe, "CLAHE in preprocessing (clip 2, 8x8 tiles)");
  s->add_option("--net", o.net, "resse_lka_unet, unet or attention_unet")
      ->check(CLI::IsMember({"resse_lka_unet", "unet", "attention_unet"}))
      ->capture_default_str();
  s->add_option("--widths", o.widths, "channels per level, 2 to 8 levels (SPEC: 32 64 128 256 512)")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  s->add_option("--lka-dilation", o.lka_dilation, "dilation of the LKA's 7x7 (1 as written, 3 as VAN)")
      ->check(CLI::Range(1, 16))
      ->capture_default_str();
  s->add_option("--epochs", o.epochs, "epochs")->check(CLI::Range(1, 100000))->capture_default_str();
  s->add_option("--batch", o.batch, "batch size")->check(CLI::Range(1, 4096))->capture_default_str();
  s->add_option("--lr", o.lr, "AdamW learning rate")->check(positive_number())->capture_default_str();
  s->add_option("--weight-decay", o.weight_decay, "AdamW weight decay")->check(CLI::Range(0.0, 10.0))->capture_default_str();
  s->add_option("--warmup-epochs", o.warmup_epochs, "linear warmup epochs")->check(CLI::Range(0, 100000))->capture_default_str();
  s->add_option("--val-every", o.val_every, "validate every N epochs (and after the last)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  s->add_option("--steps-per-epoch", o.steps_per_epoch, "steps per epoch (0: one pass over the training slices)")
      ->check(CLI::Range(0, 100000000))
      ->capture_default_str();
  s->add_option("--oversample", o.oversample, "probability of a tumour slice at each batch position (0: none)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  s->add_option("--oversample-by", o.oversample_by,
                "tumour: any tumour slice; class: ET, ED or NCR drawn alike, then a slice holding it")
      ->check(CLI::IsMember({"tumour", "class"}))
      ->capture_default_str();
  add_seed_option(s, o.seed, "seed of the split, the initialisation, the order and the augmentation");
  s->add_option("--device", o.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  s->add_option("--augment-on", o.augment_on, "auto (the device on a GPU), cpu or device")
      ->check(CLI::IsMember({"auto", "cpu", "device"}))
      ->capture_default_str();
  s->add_option("--workers", o.workers, "loader worker threads (0: automatic)")->check(CLI::Range(0, 256))->capture_default_str();
  s->add_option("--precision", o.precision,
                "activations: fp32 (the paper), bf16 or fp16 (CUDA only; fp16 with dynamic loss scaling decided "
                "on the device, skipped steps in the epoch line); weights, optimiser, loss and checkpoints stay fp32")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}))
      ->capture_default_str();
  s->add_flag("--sync-bn", o.sync_bn,
              "data-parallel (mpirun -np N): batch-norm statistics over all ranks' batches (default: per rank)");
  s->add_option("--comm", o.comm,
                "data-parallel gradient transport: auto (NCCL for GPU ranks when built, else MPI), mpi, or nccl "
                "(with one process: the data-parallel path on a single rank)")
      ->check(CLI::IsMember({"auto", "mpi", "nccl"}))
      ->capture_default_str();
  s->add_option("--dtype", o.dtype, "f32, or f64 on the CPU (slow; to check exactness, e.g. of ranks against one process)")
      ->check(CLI::IsMember({"f32", "f64"}))
      ->capture_default_str();
  s->add_option("--log-every", o.log_every, "steps between loss reads and progress lines (0: epoch ends only)")
      ->check(CLI::Range(0, 100000000))
      ->capture_default_str();
  s->add_flag("--fast-nondeterministic", o.fast_nondeterministic, kFastNondeterministicHelp);
  s->add_flag("--tf32", o.tf32, kTf32Help);
  s->add_option("--cuda-graph", o.cuda_graph, kCudaGraphHelp)->check(CLI::IsMember({"on", "off"}))->capture_default_str();
}

void check_network_memory(const model::NetConfig& cfg, int copies, const std::string& what) {
  const double params = static_cast<double>(min_parameters(cfg));
  const double need = params * 4.0 * copies;
  const double ram = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGE_SIZE));
  if (ram > 0 && need > ram) {
    char b[256];
    std::snprintf(b, sizeof b, "%s: the network has at least %.3g parameters; %s needs at least %.1f GB (%d float32 "
                  "cop%s of them) and this machine has %.1f GB: use smaller --widths",
                  what.c_str(), params, copies > 1 ? "training" : "holding it", need / 1e9, copies,
                  copies == 1 ? "y" : "ies", ram / 1e9);
    throw std::invalid_argument(b);
  }
}

void check_precision(const RunOptions& o, Device dev) {
  if (parse_precision(o.precision) != DType::F32 && dev.type != DeviceType::CUDA)
    throw std::invalid_argument("--precision " + o.precision + ": the CPU backend computes in float32 only; bf16 "
                                "and fp16 need --device cuda (fp32 is the paper's precision)");
}

train::TrainConfig train_config(const RunOptions& o, Device dev) {
  if (o.widths.size() < 2 || o.widths.size() > 8)
    throw std::invalid_argument("--widths: " + std::to_string(o.widths.size()) +
                                " level(s); the networks need 2 to 8 levels (SPEC: 32 64 128 256 512)");
  train::TrainConfig c;
  c.net.arch = model::parse_arch(o.net);
  c.net.widths = o.widths;
  c.net.deep_supervision = o.widths.size() >= 4;
  c.net.lka_dilation = o.lka_dilation;
  c.net.seed = o.seed;
  c.epochs = o.epochs;
  c.batch = o.batch;
  c.adamw.lr = o.lr;
  c.adamw.weight_decay = o.weight_decay;
  c.warmup_epochs = o.warmup_epochs;
  c.val_every = o.val_every;
  c.steps_per_epoch = o.steps_per_epoch;
  c.tumour_fraction = o.oversample;
  c.oversample_by_class = o.oversample_by == "class";
  c.seed = o.seed;
  c.augment_on = data::parse_augment_on(o.augment_on);
  c.workers = o.workers;
  c.sync_bn = o.sync_bn;
  c.dtype = o.dtype == "f64" ? DType::F64 : DType::F32;
  c.log_every = o.log_every;
  c.cuda_graph = o.cuda_graph == "on";
  c.device = dev;
  c.precision = parse_precision(o.precision);
  const int64_t stride = int64_t{1} << (o.widths.size() - 1);
  if (o.size % stride != 0)
    throw std::invalid_argument("--size " + std::to_string(o.size) + " must be divisible by 2^(levels - 1) = " +
                                std::to_string(stride) + " for " + std::to_string(o.widths.size()) + " levels");
  const int64_t coarsest = o.size / stride;
  if (o.batch * coarsest * coarsest < 2)
    throw std::invalid_argument("--batch 1 with --size " + std::to_string(o.size) + " and " +
                                std::to_string(o.widths.size()) + " levels leaves batch norm one value per channel "
                                "at the 1x1 coarsest level; use --batch 2 or more, or fewer levels");
  train::check_trainable(c, o.size);
  check_network_memory(c.net, 4, "--widths");
  return c;
}

namespace {

// The run's whole configuration, as recorded in RUN/run.json.
json run_record(const RunOptions& o, const data::PreprocessOptions& po, const train::TrainConfig& tc) {
  json split = {{"fraction", o.fraction}, {"folds", o.folds}, {"seed", o.seed}};
  if (!o.cases.empty()) {  // absent without --cases: run folders made before it stay valid
    std::vector<std::string> ids = o.cases;
    std::sort(ids.begin(), ids.end());
    split["cases"] = ids;
  }
  return {{"format", "lkaseg-run-1"},
          {"split", split},
          {"preprocess", json::parse(train::preprocess_to_json(po))},
          {"train", json::parse(tc.to_json())}};
}

// What lkaseg writes into a run folder.
bool run_entry(const fs::directory_entry& e, const RunOptions& o) {
  const std::string n = e.path().filename().string();
  static const std::set<std::string> files{"run.json",       "split.json",      "slices.lkcache", "cv_summary.json",
                                           "evaluation.csv", "evaluation.json", "table3.json", "postprocessing.json"};
  if (e.is_regular_file() && files.count(n)) return true;
  if (e.is_directory() && (n == "predictions" || n == "predictions_postprocessed")) return true;
  if (e.is_directory() && n.size() > 5 && n.compare(0, 5, "fold_") == 0 &&
      std::all_of(n.begin() + 5, n.end(), ::isdigit))
    return true;
  for (const std::string& mine : {o.cache, o.split}) {  // given inside the run folder
    std::error_code ec;
    if (!mine.empty() && fs::equivalent(e.path(), mine, ec)) return true;
  }
  return false;
}

// What the trainer writes into a fold folder (train/trainer.h).
bool fold_entry(const fs::directory_entry& e) {
  const std::string n = e.path().filename().string();
  if (e.is_directory()) return n == "val_best" || n == "val_last";  // cv's checkpoint choice (tools/cli/cv.cpp)
  if (!e.is_regular_file()) return false;
  if (n == "config.json" || n == "log.jsonl" || n == "best.safetensors" || n == "last.json" || n == "selected.json" ||
      n == "last.safetensors" || n == "last.safetensors.state" || n == "train.out")  // train.out: cv --parallel-folds
    return true;
  return n.rfind("last-", 0) == 0 && (n.ends_with(".safetensors") || n.ends_with(".safetensors.state"));
}

// Sum of the slice counts (dim[3]) of the cases' FLAIR headers: at least
// the slices the cache will hold.
int64_t slices_at_most(const data::BratsDataset& ds, const std::vector<std::string>& ids) {
  int64_t n = 0;
  for (const data::BratsCase& c : ds.cases)
    if (std::find(ids.begin(), ids.end(), c.id) != ids.end()) {
      try {
        n += data::read_nifti_header(c.images[0]).dim[3];
      } catch (const std::exception&) {  // a bad case fails when it is loaded
      }
    }
  return n;
}

}  // namespace

Prepared prepare(const RunOptions& o, bool writer) {
  // Every flag first, then the folder, the cases and the split, then the
  // recorded configuration: nothing is written, and nothing slow runs,
  // until all of it holds.
  const train::TrainConfig tc = train_config(o, cpu_device());
  data::PreprocessOptions po;
  po.size = o.size;
  po.clahe = o.clahe;
  const std::string split_path = o.split.empty() ? (fs::path(o.out) / "split.json").string() : o.split;
  const std::string cache_path = o.cache.empty() ? (fs::path(o.out) / "slices.lkcache").string() : o.cache;
  const std::string record_path = (fs::path(o.out) / "run.json").string();
  std::set<std::string> named;
  for (const std::string& id : o.cases)
    if (!named.insert(id).second) throw std::invalid_argument("--cases: " + id + " is given twice");
  // The cases (only those of --cases are looked at), before the folder is made.
  data::BratsOptions bo;
  bo.skip_bad = o.skip_bad;
  bo.only = o.cases;
  data::BratsDataset ds;
  try {
    ds = data::discover_brats_cases(o.data, bo);
  } catch (const data::MissingCaseError& e) {
    throw std::invalid_argument(std::string("--cases: ") + e.what());
  }
  std::vector<std::string> ids;
  for (const data::BratsCase& c : ds.cases) ids.push_back(c.id);

  if (writer) {
    check_output_folder(o.out, [&](const fs::directory_entry& e) { return run_entry(e, o); }, o.force, "run folder");
    std::error_code ec;
    for (fs::directory_iterator it(o.out, ec), end; !ec && it != end; it.increment(ec))
      if (it->is_directory() && it->path().filename().string().rfind("fold_", 0) == 0)
        check_output_folder(it->path().string(), fold_entry, o.force, "fold folder");
    check_parent_exists(cache_path, "--cache");
    check_replaceable(cache_path, data::is_slice_cache_file(cache_path), "not a slice cache");
    if (const fs::path cache_dir = fs::path(cache_path).parent_path(); !cache_dir.empty() && cache_dir != fs::path(o.out))
      clean_stale_temps(cache_dir.string());
  }

  Prepared p;
  const bool split_exists = fs::exists(split_path);
  if (!split_exists) {
    p.split = data::make_split(ids, o.fraction, o.seed, o.folds);
  } else {
    try {
      p.split = data::read_split_json(split_path, ids);
    } catch (const data::SplitError& e) {
      if (o.cases.empty()) throw;
      throw std::invalid_argument(std::string(e.what()) + " (with --cases the available cases are the " +
                                  std::to_string(ids.size()) + " it names: this split selects others)");
    }
    if (!o.cases.empty() && o.fraction == 1.0)
      for (const std::string& id : ids)
        if (!std::binary_search(p.split.selected.begin(), p.split.selected.end(), id))
          throw std::invalid_argument("--cases names " + id + ", which " + split_path + " does not select; with "
                                      "--fraction 1 the split must select every case of --cases");
  }
  const int n_folds = static_cast<int>(p.split.folds.size());
  if (o.fold >= n_folds)
    throw std::invalid_argument("--fold " + std::to_string(o.fold) + ": the split has " + std::to_string(n_folds) +
                                " folds (0.." + std::to_string(n_folds - 1) + ")");
  for (int k = std::max(o.fold, 0); k < (o.fold >= 0 ? o.fold + 1 : n_folds); ++k) {
    const std::vector<std::string>& train_ids = p.split.folds[static_cast<size_t>(k)].train;
    if (const int64_t most = slices_at_most(ds, train_ids); most > 0 && most < o.batch)
      throw std::invalid_argument("--batch " + std::to_string(o.batch) + ": fold " + std::to_string(k) + "'s " +
                                  std::to_string(train_ids.size()) + " training case(s) hold at most " +
                                  std::to_string(most) + " slices, not one batch");
  }
  json record = run_record(o, po, tc);
  if (fs::exists(record_path)) {
    json then;
    try {
      std::ifstream in(record_path);
      then = json::parse(in);
    } catch (const std::exception& e) {
      throw std::runtime_error(record_path + ": not valid JSON (" + e.what() + ")");
    }
    json now = record;
    for (json* j : {&then, &now})
      if (j->contains("train") && (*j)["train"].is_object()) (*j)["train"].erase("epochs");  // may grow
    if (const std::string d = train::config_difference(then.dump(), now.dump()); !d.empty())
      throw std::invalid_argument(record_path + ": this run folder was made with other settings (" + d +
                                  "); use the same flags (only --epochs may change), a new --out folder, or remove " +
                                  o.out + " to start over");
  }

  if (writer && !split_exists) data::write_split_json(split_path, p.split);
  if (writer) write_file_atomically(record_path, record.dump(2) + "\n");
  if (split_exists)
    std::printf("split: %s (%zu cases selected, %d folds)\n", split_path.c_str(), p.split.selected.size(), n_folds);
  else
    std::printf("split: %zu of %zu cases%s (fraction %g, seed %llu) in %d folds -> %s\n", p.split.selected.size(),
                ids.size(), o.cases.empty() ? "" : " named by --cases", o.fraction,
                static_cast<unsigned long long>(o.seed), n_folds, split_path.c_str());
  std::fflush(stdout);  // before the build's progress lines on stderr
  data::CacheBuildOptions b;
  b.threads = o.threads;
  b.skip_bad = o.skip_bad;
  b.only = p.split.selected;
  b.log = [](const std::string& m) { std::printf("  %s\n", m.c_str()); };
  data::CacheBuildSummary s;
  p.cache = data::ensure_slice_cache(cache_path, o.data, po, b, &s);
  if (!s.skipped.empty())
    throw std::invalid_argument(cache_path + ": " + std::to_string(s.skipped.size()) +
                                " selected case(s) are bad (first: " + s.skipped.front().id + ": " +
                                s.skipped.front().reason + "); remove them from " + split_path + " or fix them");
  std::printf("cache: %s, %lld slices of %lld cases (%s)\n", cache_path.c_str(),
              static_cast<long long>(p.cache.slices()), static_cast<long long>(p.cache.num_cases()),
              s.built ? "built" : "reused");
  return p;
}

FoldOutcome run_fold(const RunOptions& o, const Prepared& p, int k, Device dev, dist::Communicator* comm) {
  if (k >= static_cast<int>(p.split.folds.size()))
    throw std::invalid_argument("--fold " + std::to_string(k) + ": the split has " +
                                std::to_string(p.split.folds.size()) + " folds");
  const data::Fold& f = p.split.folds[static_cast<size_t>(k)];
  FoldOutcome out;
  out.dir = (fs::path(o.out) / ("fold_" + std::to_string(k))).string();
  std::printf("fold %d: %zu training cases, %zu validation cases -> %s\n", k, f.train.size(), f.val.size(),
              out.dir.c_str());
  std::fflush(stdout);
  train::TrainHooks h;
  h.stop = &stop_flag();
  h.progress = stderr;
  // One process trains as always unless --comm asks for the data-parallel path.
  h.comm = comm && (comm->size() > 1 || o.comm != "auto") ? comm : nullptr;
  h.log = [](const std::string& m) {
    std::printf("  %s\n", m.c_str());
    std::fflush(stdout);
  };
  const StopScope stoppable(h.comm && h.comm->size() > 1
                                ? "the current step on every rank (a checkpoint is written)"
                                : "the current step (a checkpoint is written)");
  out.result = train::train_fold(train_config(o, dev), p.cache, f.train, f.val, out.dir, h);
  return out;
}

namespace {
std::string pm(double mean, double sd, double scale) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%6.2f +- %5.2f", mean * scale, sd * scale);
  return buf;
}

}  // namespace

int train_folds(const RunOptions& o, const Prepared& p, bool all_folds, Device dev, dist::Communicator* comm) {
  set_fast_nondeterministic(o.fast_nondeterministic);
  set_tf32(o.tf32);
  std::vector<FoldOutcome> done;
  const int first = all_folds ? 0 : o.fold;
  const int last = all_folds ? static_cast<int>(p.split.folds.size()) - 1 : o.fold;
  for (int k = first; k <= last; ++k) {
    done.push_back(run_fold(o, p, k, dev, comm));
    if (done.back().result.stopped) {
      std::printf("stopped: run the same command again to resume\n");
      return 130;
    }
  }
  // Best validation per fold, and (cv) the mean +- sample std over folds.
  json folds = json::array();
  std::vector<std::array<double, 4>> rows;  // NCR, ET, ED, mean
  for (size_t i = 0; i < done.size(); ++i) {
    const train::TrainResult& r = done[i].result;
    const auto best = std::find_if(r.log.begin(), r.log.end(),
                                   [&](const train::EpochLog& e) { return e.epoch == r.best_epoch && e.val; });
    if (best == r.log.end()) continue;
    rows.push_back({best->val->dice[0], best->val->dice[1], best->val->dice[2], best->val->mean});
    folds.push_back({{"fold", first + static_cast<int>(i)},
                     {"best_epoch", r.best_epoch},
                     {"dice_ncr", best->val->dice[0]},
                     {"dice_et", best->val->dice[1]},
                     {"dice_ed", best->val->dice[2]},
                     {"dice_mean", best->val->mean},
                     {"checkpoint", (fs::path(done[i].dir) / "best.safetensors").string()}});
  }
  std::printf("\nvalidation Dice %% (best epoch; slice grid, see `lkaseg predict` + `lkaseg evaluate` for the original grid)\n");
  std::printf("%-8s %-16s %-16s %-16s %-16s\n", "fold", "NCR", "ET", "ED", "mean");
  for (size_t i = 0; i < rows.size(); ++i)
    std::printf("%-8d %6.2f           %6.2f           %6.2f           %6.2f\n", folds[i]["fold"].get<int>(),
                100 * rows[i][0], 100 * rows[i][1], 100 * rows[i][2], 100 * rows[i][3]);
  if (all_folds && rows.size() >= 2) {
    std::array<double, 4> mean{}, sd{};
    for (const auto& r : rows)
      for (int c = 0; c < 4; ++c) mean[c] += r[c] / static_cast<double>(rows.size());
    for (const auto& r : rows)
      for (int c = 0; c < 4; ++c) sd[c] += (r[c] - mean[c]) * (r[c] - mean[c]) / static_cast<double>(rows.size() - 1);
    for (double& s : sd) s = std::sqrt(s);
    std::printf("%-8s %s %s %s %s   (mean +- sample std over folds)\n", "all", pm(mean[0], sd[0], 100).c_str(),
                pm(mean[1], sd[1], 100).c_str(), pm(mean[2], sd[2], 100).c_str(), pm(mean[3], sd[3], 100).c_str());
    const json summary = {{"folds", folds},
                          {"mean", {{"dice_ncr", mean[0]}, {"dice_et", mean[1]}, {"dice_ed", mean[2]}, {"dice_mean", mean[3]}}},
                          {"std", {{"dice_ncr", sd[0]}, {"dice_et", sd[1]}, {"dice_ed", sd[2]}, {"dice_mean", sd[3]}}}};
    const std::string path = (fs::path(o.out) / "cv_summary.json").string();
    if (!comm || comm->rank() == 0) write_file_atomically(path, summary.dump(2) + "\n");
    std::printf("wrote %s\n", path.c_str());
  }
  return 0;
}

void prepare_prediction_folder(const std::string& dir, bool force) {
  check_output_folder(
      dir,
      [](const fs::directory_entry& e) {
        if (e.is_directory() && e.path().filename() == "probabilities") return true;  // predict --save-probabilities
        return e.is_regular_file() && e.path().filename().string().ends_with(".nii.gz") &&
               nifti_described(e.path().string(), kPredictionDescription);
      },
      force, "predictions folder");
}

train::CasePrediction predict_case_file(const std::vector<model::SegNet*>& nets, const data::PreprocessOptions& po,
                                        const data::BratsCase& bc, const std::string& out_dir,
                                        const train::CasePredictOptions& o) {
  const std::string out = (fs::path(out_dir) / (bc.id + ".nii.gz")).string();
  check_replaceable(out, nifti_described(out, kPredictionDescription), "not an lkaseg prediction");
  if (o.save_probabilities) {
    const std::string probs = (fs::path(out_dir) / "probabilities" / (bc.id + ".nii.gz")).string();
    check_replaceable(probs, nifti_described(probs, train::kProbabilitiesDescription), "not an lkaseg probability map");
  }
  return train::predict_case_file(nets, po, bc, out_dir, o);
}

void predict_case_file(model::SegNet& net, const data::PreprocessOptions& po, const data::BratsCase& bc,
                       const std::string& out_dir, int64_t batch, Device dev) {
  train::CasePredictOptions o;
  o.predict.batch = batch;
  o.predict.device = dev;
  cli::predict_case_file(std::vector<model::SegNet*>{&net}, po, bc, out_dir, o);
}

}  // namespace lk::cli
