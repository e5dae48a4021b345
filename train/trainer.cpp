#include "train/trainer.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "util/dice.h"
#include "engine/autograd.h"
#include "engine/loss_scaler.h"
#include "engine/state_dict.h"
#include "engine/step_graph.h"
#include "train/checkpoint.h"
#include "train/predict.h"
#include "train/train_progress.h"
#include "util/atomic_file.h"
#include "util/interrupt.h"

namespace lk::train {

using namespace lk::model;
using namespace lk::train;

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Training classes of the paper's columns NCR, ET, ED (data/preprocess.h: 1 ET, 2 ED, 3 NCR).
constexpr std::array<int32_t, 3> kColumnClass{3, 1, 2};

std::string fmt(const char* f, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, a);
  return buf;
}

// Data-parallel ranks: every rank must hold the same weights, buffers and
// moments. Rank 0's are broadcast at the start; at each epoch end a hash of
// each rank's is compared with rank 0's, and a difference stops every rank.
std::vector<Tensor> replicated(const SegNet& net, const AdamW& opt) {
  std::vector<Tensor> ts = net.parameters();
  for (const auto& [name, b] : net.named_buffers()) ts.push_back(b);
  for (const std::vector<Tensor>* m : {&opt.first_moments(), &opt.second_moments()})
    ts.insert(ts.end(), m->begin(), m->end());
  return ts;
}

void check_replicas(dist::Communicator& comm, const SegNet& net, const AdamW& opt, int64_t step) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the bytes
  for (const Tensor& t : replicated(net, opt)) {
    const Tensor host = t.device().type == DeviceType::CPU ? t : t.to(cpu_device());
    const auto* p = static_cast<const unsigned char*>(host.raw());
    for (size_t i = 0; i < host.nbytes(); ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  uint64_t h0 = h;
  comm.broadcast_host(&h0, sizeof h0, 0);
  double differ = h0 != h;
  comm.sum_host(&differ, 1);
  if (differ > 0)
    throw std::runtime_error("data-parallel replicas diverged: " + std::to_string(static_cast<int>(differ)) +
                             " rank(s) hold other weights than rank 0 after step " + std::to_string(step) +
                             (h0 != h ? " (this one among them)" : ""));
}

}  // namespace

TrainResult train_fold(const TrainConfig& cfg, const data::SliceCache& cache,
                       const std::vector<std::string>& train_ids, const std::vector<std::string>& val_ids,
                       const std::string& run_dir, const TrainHooks& hooks) {
  // Everything is checked before anything is written: a run that cannot
  // start leaves no config.json behind to refuse the corrected rerun.
  check_trainable(cfg, cache.side());
  dist::Communicator* const comm = hooks.comm;  // one rank too: the data-parallel path on one process
  const int ranks = comm ? comm->size() : 1;
  const bool lead = !comm || comm->rank() == 0;  // logs, validates, writes
  const auto say = [&](const std::string& m) {
    if (hooks.log && lead) hooks.log(m);
  };
  const fs::path dir(run_dir);
  const std::string config_path = (dir / "config.json").string(), best = (dir / "best.safetensors").string(),
                    log_path = (dir / "log.jsonl").string();
  const Checkpoints checkpoints(run_dir, "last");

  const std::vector<int64_t> train_slices = cache.slices_of(train_ids);
  const int64_t bpe = static_cast<int64_t>(train_slices.size()) / (cfg.batch * ranks);
  if (bpe == 0)
    throw std::invalid_argument("training: " + std::to_string(train_slices.size()) +
                                " training slices make no batch of " + std::to_string(cfg.batch * ranks) +
                                (ranks > 1 ? " (" + std::to_string(ranks) + " ranks x " + std::to_string(cfg.batch) + ")"
                                           : std::string()));
  const int64_t spe = cfg.steps_per_epoch > 0 ? cfg.steps_per_epoch : bpe, total = cfg.epochs * spe;

  // One configuration per run folder: the training configuration and the
  // preprocessing of the slices it trains on.
  json cj = json::parse(cfg.to_json());
  if (ranks > 1) cj["ranks"] = ranks, cj["sync_bn"] = cfg.sync_bn;
  cj["preprocess"] = json::parse(preprocess_to_json(cache.options()));
  if (fs::exists(config_path)) {
    std::ifstream in(config_path);
    std::stringstream ss;
    ss << in.rdbuf();
    json prev;
    try {
      prev = json::parse(ss.str());
    } catch (const std::exception& e) {
      throw std::runtime_error(config_path + ": not valid JSON (" + e.what() + ")");
    }
    if (const int was = prev.is_object() ? prev.value("ranks", 1) : 1; was != ranks)
      throw std::invalid_argument(config_path + ": this run was trained on " + std::to_string(was) +
                                  " rank(s) (global batch " + std::to_string(was * cfg.batch) + "), now " +
                                  std::to_string(ranks) + "; resume it with the same rank count (" +
                                  (was > 1 ? "mpirun -np " + std::to_string(was) : std::string("no mpirun")) +
                                  "), or use a new run folder");
    json now = cj;
    if (prev.is_object() && !prev.contains("preprocess")) now.erase("preprocess");  // written before it was recorded
    if (const std::string d = config_difference(prev.dump(), now.dump()); !d.empty())
      throw std::invalid_argument(config_path + ": this run folder was made with another configuration (" + d +
                                  "); use the same settings, a new folder, or remove it to start over");
  }

  SegNet net(cfg.net);
  if (cfg.precision != DType::F32 && cfg.device.type != DeviceType::CUDA)
    throw std::invalid_argument(std::string("--precision ") + precision_name(cfg.precision) +
                                ": the CPU backend computes in float32; reduced precision needs --device cuda");
  net.set_precision(cfg.precision);
  net.to_device(cfg.device);
  if (cfg.dtype != DType::F32) net.cast_(cfg.dtype);
  const DeepSupervisionLoss loss_fn(cfg.loss);
  LossMeter meter;  // the loss, summed on the device between reads
  AdamW opt(net.parameters(), cfg.adamw);
  LossScaler scaler(cfg.precision == DType::F16, {.init_scale = cfg.loss_scale}, cfg.device);
  opt.skip_if(scaler.found_inf());  // fp16: a step whose gradients overflowed is skipped on the device
  const LrSchedule sched{.base_lr = cfg.adamw.lr, .warmup_epochs = cfg.warmup_epochs,
                         .start_factor = cfg.warmup_start, .decay = cfg.decay, .steps_per_epoch = spe};

  TrainResult r;
  int64_t step = 0;
  double resumed_loss_sum = 0;  // of the unfinished epoch a stop left
  int64_t resumed_steps = 0;
  bool epoch_end_pending = false;  // a stop came during the last epoch's validation
  if (lead)
    for (const std::string& f : remove_stale_temps(run_dir)) say("removed " + f + " (left by a killed run)");
  if (const std::optional<TrainState> st = checkpoints.load_newest(net, opt, say)) {
    if (st->schedule.steps_per_epoch != spe)
      throw std::invalid_argument(run_dir + ": checkpoint saved with " + std::to_string(st->schedule.steps_per_epoch) +
                                  " steps per epoch, now " + std::to_string(spe) +
                                  " (the training cases changed?); use a new run folder");
    step = st->step;
    r.resumed_from_step = step;
    epoch_end_pending = st->epoch_open && step % spe == 0 && step > 0;
    if (step % spe != 0 || epoch_end_pending)
      resumed_loss_sum = st->epoch_loss_sum, resumed_steps = st->epoch_loss_steps;
    if (fs::exists(log_path)) r.log = read_run_log(log_path);
    std::erase_if(r.log, [&](const EpochLog& e) { return e.epoch > step / spe; });
    for (const EpochLog& e : r.log)
      if (e.val && e.val->mean > r.best_dice) r.best_dice = e.val->mean, r.best_epoch = e.epoch;
    if (lead)
      for (const std::string& f : checkpoints.adopt(*st)) say("removed " + f + " (an unfinished save)");
    if (epoch_end_pending)
      say("resuming " + run_dir + " at step " + std::to_string(step) + ": the validation of epoch " +
          std::to_string(step / spe) + " was stopped, running it first");
    else
      say("resuming " + run_dir + " at step " + std::to_string(step) + " (epoch " + std::to_string(step / spe + 1) +
          ", batch " + std::to_string(step % spe + 1) + " of " + std::to_string(spe) + ")");
  } else if (fs::exists(log_path) || fs::exists(best)) {
    say("no complete checkpoint in " + run_dir + " (the first save did not finish): starting the fold from step 0");
  }
  if (comm) {  // every rank resumes the checkpoint rank 0 resumes (its weights are broadcast below)
    int64_t step0 = step;
    comm->broadcast_host(&step0, sizeof step0, 0);
    if (step0 != step)
      throw std::runtime_error(run_dir + ": rank " + std::to_string(comm->rank()) + " found the checkpoint of step " +
                               std::to_string(step) + ", rank 0 that of step " + std::to_string(step0) +
                               " (the folder changed while the ranks read it?)");
  }
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec || !fs::is_directory(run_dir))
    throw std::runtime_error(run_dir + ": cannot create the run folder" + (ec ? " (" + ec.message() + ")" : ""));
  if (lead) write_file_atomically(config_path, cj.dump(2) + "\n");
  if (step >= total && !epoch_end_pending) {
    const int64_t done = step / spe;
    say(run_dir + ": already trained for " + std::to_string(done) + (done == 1 ? " epoch" : " epochs") +
        (done > cfg.epochs ? " (--epochs " + std::to_string(cfg.epochs) + " asks for fewer)" : ""));
    return r;
  }
  std::unique_ptr<dist::GradSync> grad_sync;
  std::shared_ptr<const BatchReduce> batch_reduce;
  if (comm) {
    for (const Tensor& t : replicated(net, opt)) comm->broadcast(t, 0);
    grad_sync = std::make_unique<dist::GradSync>(*comm, net.parameters());
    batch_reduce = std::make_shared<const BatchReduce>(
        BatchReduce{[comm](double* v, int64_t n) { comm->sum_host(v, n); }, cfg.sync_bn});
  }
  // A stop request counts when any rank has one (all ranks stop at the same step).
  const auto stop_requested = [&] {
    double s = hooks.stop && hooks.stop->load();
    if (comm) comm->sum_host(&s, 1);
    return s > 0;
  };

  // What `lkaseg predict` needs, in every weights file the run writes.
  const std::map<std::string, std::string> weights_meta{{"lkaseg.train_config", cfg.to_json()},
                                                        {"lkaseg.preprocess", preprocess_to_json(cache.options())}};
  const auto save_last = [&](double lr, double loss_sum, int64_t loss_steps, bool epoch_open = false) {
    TrainState st;
    st.epoch_open = epoch_open;
    st.epoch_loss_sum = loss_sum;
    st.epoch_loss_steps = loss_steps;
    st.step = step;
    st.epoch = step / spe;
    st.lr = lr;
    st.schedule = sched;
    st.config = cj.dump();
    auto meta = weights_meta;
    meta["lkaseg.epoch"] = std::to_string(st.epoch);
    if (lead) checkpoints.save(net, opt, st, meta);
  };

  data::LoaderOptions lo;
  lo.batch_size = cfg.batch;
  lo.seed = cfg.seed;
  lo.tumour_fraction = cfg.tumour_fraction;
  lo.oversample_by_class = cfg.oversample_by_class;
  lo.augment_on = cfg.augment_on;
  lo.workers = cfg.workers;
  lo.device = cfg.device;
  lo.out_side = cache.side();
  lo.rank = comm ? comm->rank() : 0;
  lo.ranks = ranks;
  data::Loader loader(cache, train_slices, lo, step / bpe, step % bpe);
  say("training " + std::to_string(train_ids.size()) + " cases (" + std::to_string(train_slices.size()) +
      " slices), " + std::to_string(spe) + " steps per epoch, on " + cfg.device.str() + ", augmentation on the " +
      (loader.augments_on_device() ? "device" : "CPU") + ", " + std::to_string(loader.workers()) + " loader worker(s)" +
      (comm ? ", " + std::to_string(ranks) + " ranks x batch " + std::to_string(cfg.batch) +
                  (cfg.sync_bn ? ", synchronised batch norm" : "") + " (" + comm->describe() + ")"
            : std::string()));
  TrainProgress progress(lead ? hooks.progress : nullptr, cfg.epochs, spe, cfg.val_every, step);
  // One rank on a GPU: the step captured at the second step and replayed
  // after (engine/step_graph.h). With ranks the host exchanges gradient
  // buckets during the backward, which no graph can hold: eager.
  if (comm && cfg.cuda_graph && cfg.device.type == DeviceType::CUDA)
    say("CUDA Graph: off for data-parallel training (the host exchanges gradients during the backward); training "
        "eagerly");
  // fp16's dynamic loss scaler decides on the device (engine/loss_scaler.h):
  // its steps replay the graph as fp32's and bf16's.
  StepGraph graph(cfg.cuda_graph && !comm, say);
  net.train(true);
  using Clock = std::chrono::steady_clock;
  while (step < total || epoch_end_pending) {
    const bool only_end = std::exchange(epoch_end_pending, false);
    EpochLog e;
    e.epoch = only_end ? step / spe : step / spe + 1;
    if (only_end) e.lr = sched.lr_at(step - 1);
    double loss_sum = std::exchange(resumed_loss_sum, 0.0);
    e.steps = std::exchange(resumed_steps, 0);
    const auto t0 = Clock::now();
    loader.reset_stats();
    progress.begin_epoch(e.epoch);
    // The mean loss of the steps since the last read (this waits for the device).
    const auto read_loss = [&] {
      const int64_t k = meter.count();
      double sum = 0;
      for (const double l : meter.take()) sum += l, loss_sum += l;
      if (!std::isfinite(sum))
        throw std::runtime_error("training diverged: the loss was not finite in steps " +
                                 std::to_string(step - k + 1) + " to " + std::to_string(step) + " (epoch " +
                                 std::to_string(e.epoch) + "); the last good checkpoint is " +
                                 checkpoints.manifest_path());
      return k ? sum / static_cast<double>(k) : 0.0;
    };
    if (!only_end) do {
      e.lr = sched.lr_at(step);
      opt.set_lr(e.lr);
      const data::Batch b = loader.next();
      const Tensor images = cfg.dtype == DType::F32 ? b.images : b.images.to(cfg.dtype);
      if (comm) {  // the global batch's statistics; gradient buckets summed during the backward
        const BatchReduceScope scope(batch_reduce);
        const LossTerms t = loss_fn(net.forward(images), b.labels);
        meter.add(t.total);
        opt.zero_grad();
        scaler.backward(t.total, [&](const Tensor& leaf) { grad_sync->ready(leaf); });
        grad_sync->finish();
        // fp16: the rank-summed gradients unscaled; a step with a non-finite
        // one is skipped on every rank alike (the same sums decide on each device)
        scaler.unscale(net.parameters());
        opt.step();
      } else {
        meter.add(graph.run(images, b.labels, net, opt, [&](const Tensor& x, const Tensor& labels) {
          const LossTerms t = loss_fn(net.forward(x), labels);
          opt.zero_grad();
          scaler.backward(t.total);  // fp16: from loss * S; else plain
          scaler.unscale(net.parameters());
          opt.step();
          return t.total.detach();
        }));
      }
      ++e.steps;
      ++step;
      // The loss is read (a wait for the device) only every log_every steps.
      double read = std::numeric_limits<double>::quiet_NaN();
      if (cfg.log_every > 0 && step % cfg.log_every == 0 && step % spe != 0) {
        read = read_loss();
        say("step " + std::to_string(step) + "/" + std::to_string(total) + " (epoch " + std::to_string(e.epoch) +
            ")  loss " + fmt("%.4f", read));
      }
      progress.step(read);
      if (stop_requested() && step % spe != 0) {
        read_loss();  // a diverged run keeps its last good checkpoint
        progress.end_epoch();
        save_last(e.lr, loss_sum, e.steps);
        r.stopped = true;
        say("stopped at step " + std::to_string(step) + ": checkpoint " + checkpoints.weights_path(step) +
            " written; run again to resume");
        return r;
      }
    } while (step % spe != 0);
    read_loss();
    progress.end_epoch();
    e.loss = loss_sum / static_cast<double>(e.steps);
    e.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    e.wait_ms = loader.stats().mean_wait_ms();
    std::string line = "epoch " + std::to_string(e.epoch) + "/" + std::to_string(cfg.epochs) + "  loss " +
                       fmt("%.4f", e.loss) + "  lr " + fmt("%.2e", e.lr) + "  " + fmt("%.1f", e.seconds) + " s  wait " +
                       fmt("%.1f", e.wait_ms) + " ms/step";
    if (scaler.enabled())  // fp16: the loss scale and the steps skipped on overflow so far
      line += "  loss scale " + fmt("%g", scaler.scale()) + " (" + std::to_string(scaler.skipped()) + " skipped)";
    if (comm) {
      // Per-rank batch norm: each rank's running statistics saw only its
      // share; rank 0's are kept (as PyTorch's DDP broadcasts its buffers).
      if (!cfg.sync_bn)
        for (const auto& [name, b] : net.named_buffers()) comm->broadcast(b, 0);
      check_replicas(*comm, net, opt, step);
    }
    if (lead && (e.epoch % cfg.val_every == 0 || e.epoch == cfg.epochs)) {
      const auto tv = Clock::now();
      // With ranks the others wait in the next collective: rank 0 validates to the end.
      e.val = validate(net, cache, val_ids, cfg.eval_batch, cfg.device, comm ? nullptr : hooks.stop);
      if (!e.val) {  // stopped between validation cases: the epoch's end runs again on resume
        save_last(e.lr, loss_sum, e.steps, true);
        r.stopped = true;
        say("stopped during the validation of epoch " + std::to_string(e.epoch) + ": checkpoint " +
            checkpoints.weights_path(step) + " written; run again to validate it and go on");
        return r;
      }
      progress.validated(std::chrono::duration<double>(Clock::now() - tv).count());
      line += "  val Dice NCR " + fmt("%.3f", e.val->dice[0]) + " ET " + fmt("%.3f", e.val->dice[1]) + " ED " +
              fmt("%.3f", e.val->dice[2]) + " mean " + fmt("%.3f", e.val->mean);
      if (e.val->mean > r.best_dice) {
        r.best_dice = e.val->mean;
        r.best_epoch = e.epoch;
        auto meta = weights_meta;
        meta["format"] = "lkaseg-weights-1";
        meta["lkaseg.epoch"] = std::to_string(e.epoch);
        meta["lkaseg.val_dice_mean"] = fmt("%.6f", e.val->mean);
        save_state_dict(best, net, meta);
        line += "  (best)";
      }
    }
    r.log.push_back(e);
    if (lead) write_run_log(log_path, r.log);
    save_last(e.lr, 0, 0);
    if (step < total) line += "  run ETA " + progress.run_eta();
    say(line);
    if (comm) comm->barrier();  // the others sleep while rank 0 validates and writes
    if (stop_requested() && step < total) {
      r.stopped = true;
      say("stopped after epoch " + std::to_string(e.epoch) + ": checkpoint " + checkpoints.weights_path(step) +
          " written; run again to resume");
      return r;
    }
  }
  return r;
}

std::optional<ValidationResult> validate(SegNet& net, const data::SliceCache& cache,
                                         const std::vector<std::string>& val_ids, int64_t batch, Device dev,
                                         const std::atomic<bool>* stop) {
  ValidationResult r;
  for (int64_t c = 0; c < cache.num_cases(); ++c) {
    const data::CachedCase& cc = cache.case_info(c);
    if (std::find(val_ids.begin(), val_ids.end(), cc.id) == val_ids.end()) continue;
    if (stop && stop->load()) return std::nullopt;
    if (!cc.has_labels) throw std::invalid_argument(cache.path() + ": validation case " + cc.id + " has no labels");
    const std::vector<int32_t> pred = predict_cached_case(net, cache, c, batch, dev);
    for (size_t k = 0; k < 3; ++k) r.dice[k] += class_overlap(pred.data(), cache.labels(cc.first_slice), pred.size(), kColumnClass[k]).dice();
    ++r.cases;
  }
  if (r.cases == 0) throw std::invalid_argument("validate: none of the validation cases is in " + cache.path());
  for (double& d : r.dice) d /= static_cast<double>(r.cases);
  r.mean = (r.dice[0] + r.dice[1] + r.dice[2]) / 3.0;
  return r;
}

}  // namespace lk::train
