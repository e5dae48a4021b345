// lkaseg demo: generates synthetic BraTS-like cases (or reads --data),
// preprocesses them to slices, trains a network (ResSE-LKA-UNet by default)
// with the paper's loss from the background loader, and reports Dice, then
// Dice/HD95 in the original grid.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/brats_cases.h"
#include "data/loader.h"
#include "data/slice_cache.h"
#include "data/splits.h"
#include "engine/backend.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/step_graph.h"
#include "model/loss.h"
#include "model/networks.h"
#include "tools/cli/commands.h"
#include "eval/evaluate.h"
#include "tools/cli/output_guard.h"
#include "tools/cli/run.h"
#include "tools/cli/synth.h"
#include "train/checkpoint.h"
#include "train/schedule.h"
#include "util/dice.h"

namespace lk::cli {

namespace {

struct DemoOptions {
  int steps = 60, batch = 4, size = 128, cases = 6;
  std::string net = "resse_lka_unet", data, save, work;
  std::vector<int64_t> widths{16, 32, 64, 128};
  double lr = 3e-3;
  uint64_t seed = 42;
  std::string optimizer = "adamw", device = "auto", augment_on = "auto";
  bool force = false;
  bool fast_nondeterministic = false;
  bool tf32 = false;
  std::string cuda_graph = "on";
};

// Per-class Dice (training classes 1 ET, 2 ED, 3 NCR) of argmax(logits) vs
// labels, pooled over the batch; a class absent from both counts as 1.
std::array<double, 3> class_dice(const Tensor& logits, const Tensor& labels) {
  const int64_t n = logits.size(0), c = logits.size(1), hw = logits.size(2) * logits.size(3);
  const std::vector<double> z = logits.to_vector();
  const std::vector<double> y = labels.to_vector();
  std::vector<int64_t> pred(static_cast<size_t>(n * hw));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < hw; ++p) {
      int64_t best = 0;
      for (int64_t k = 1; k < c; ++k)
        if (z[(i * c + k) * hw + p] > z[(i * c + best) * hw + p]) best = k;
      pred[i * hw + p] = best;
    }
  std::array<double, 3> d{};
  for (int k = 1; k <= 3; ++k) d[k - 1] = class_overlap(pred.data(), y.data(), pred.size(), k).dice();
  return d;
}

int cmd_demo(const DemoOptions& o) {
  // Everything that could refuse the run is checked before it starts.
  if (!o.save.empty()) {
    check_parent_exists(o.save, "--save");
    for (const std::string& f : {o.save, o.save + ".state"})
      check_replaceable(f, is_lkaseg_safetensors(f), "not a safetensors file written by lkaseg");
  }
  model::NetConfig cfg;
  cfg.arch = model::parse_arch(o.net);
  cfg.widths = o.widths;
  cfg.deep_supervision = cfg.widths.size() >= 4;
  cfg.seed = o.seed;
  if (cfg.widths.size() < 2) throw std::invalid_argument("--widths: the networks need at least 2 levels");
  const int64_t stride = int64_t{1} << (cfg.widths.size() - 1);
  if (o.size % stride) throw std::invalid_argument("--size must be divisible by " + std::to_string(stride));
  check_network_memory(cfg, 4, "--widths");
  const Device dev = resolve_device(o.device);
  set_fast_nondeterministic(o.fast_nondeterministic);
  set_tf32(o.tf32);
  // The data: BraTS-layout cases, generated unless --data names a folder.
  // The work folder holds the generated cases (data/), the slice cache, the
  // split and the predictions; a --data folder is only read.
  const std::filesystem::path work =
      o.work.empty() ? std::filesystem::temp_directory_path() / ("lkaseg-demo-" + std::to_string(o.seed)) : std::filesystem::path(o.work);
  check_output_folder(
      work.string(),
      [](const std::filesystem::directory_entry& e) {
        const std::string n = e.path().filename().string();
        return e.is_directory() ? n == "data" || n == "predictions" : n == "slices.lkcache" || n == "split.json";
      },
      o.force, "--work folder");
  std::string root = o.data;
  if (root.empty()) {
    root = (work / "data").string();
    SynthCommand synth;
    synth.out = root;
    synth.cases = o.cases;
    synth.seed = o.seed;
    synth.force = o.force;
    std::printf("generating %d synthetic BraTS-like cases in %s\n", o.cases, root.c_str());
    if (run_synth(synth) != 0) return 1;
  }
  // Preprocessed once into the slice cache beside the cases (rebuilt when
  // stale or damaged), split into folds (split.json; an edited one is
  // honoured), fold 0 validates.
  data::PreprocessOptions po;
  po.size = o.size;
  const auto t_pre = std::chrono::steady_clock::now();
  const data::SliceCache cache = data::ensure_slice_cache(
      (work / "slices.lkcache").string(), root, po,
      [](const std::string& m) { std::printf("  %s\n", m.c_str()); });
  std::vector<std::string> ids;
  for (int64_t c = 0; c < cache.num_cases(); ++c) ids.push_back(cache.case_info(c).id);
  if (ids.size() < 2) throw std::invalid_argument(root + ": the demo needs at least 2 cases (train + validation)");
  const std::string split_path = (work / "split.json").string();
  data::Split split;
  if (std::filesystem::exists(split_path)) {
    split = data::read_split_json(split_path, ids);
  } else {
    split = data::make_split(ids, 1.0, o.seed, std::min<int>(5, static_cast<int>(ids.size())));
    data::write_split_json(split_path, split);
  }
  const data::Fold& fold = split.folds.front();
  const std::vector<int64_t> train_slices = cache.slices_of(fold.train);
  const std::vector<int64_t> val_slices = cache.slices_of(fold.val);
  std::printf("slice cache: %lld slices of %lld cases (%.1f s); fold 0 of %s: %zu training cases (%zu slices), %zu "
              "validation (%zu slices)\n",
              static_cast<long long>(cache.slices()), static_cast<long long>(cache.num_cases()),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t_pre).count(), split_path.c_str(),
              fold.train.size(), train_slices.size(), fold.val.size(), val_slices.size());

  auto net = std::make_unique<model::SegNet>(cfg);
  net->to_device(dev);
  std::printf("demo: %s (widths", o.net.c_str());
  for (int64_t w : o.widths) std::printf(" %lld", static_cast<long long>(w));
  std::printf(", %lld parameters), %dx%d slices, batch %d, %d steps, %s lr %.g with warmup, on %s\n",
              static_cast<long long>(net->parameter_count()), o.size, o.size, o.batch, o.steps, o.optimizer.c_str(),
              o.lr, dev.str().c_str());
  std::unique_ptr<Optimizer> opt;
  if (o.optimizer == "sgd" && dev.type != DeviceType::CPU)
    throw std::invalid_argument("--optimizer sgd runs on the CPU only; use adamw on " + dev.str());
  if (o.optimizer == "sgd") opt = std::make_unique<SGD>(net->parameters(), o.lr, 0.9);
  else opt = std::make_unique<AdamW>(net->parameters(), AdamW::Options{.lr = o.lr});
  // The paper's schedule shape, compressed: warm up over the first tenth.
  const LrSchedule sched{.base_lr = o.lr, .warmup_epochs = 1, .start_factor = 0.1, .decay = 0.95,
                         .steps_per_epoch = std::max(1, o.steps / 10)};

  // Validation batch: up to 16 slices with tumour from the validation cases.
  std::vector<int64_t> eval_slices;
  {
    const std::vector<int64_t> tum = cache.tumour_slices();
    std::vector<int64_t> val_tumour;
    std::set_intersection(val_slices.begin(), val_slices.end(), tum.begin(), tum.end(), std::back_inserter(val_tumour));
    for (size_t i = 0; i < 16 && i < val_tumour.size(); ++i) eval_slices.push_back(val_tumour[i * val_tumour.size() / std::min<size_t>(16, val_tumour.size())]);
    if (eval_slices.empty()) eval_slices.push_back(val_slices[val_slices.size() / 2]);
  }
  data::Batch eval = cache.batch(eval_slices);
  eval.images = eval.images.to(dev);
  eval.labels = eval.labels.to(dev);
  auto evaluate = [&](const char* when) {
    NoGradGuard ng;
    net->train(false);
    const auto out = net->forward(eval.images);
    const double loss = model::deep_supervision_loss(out, eval.labels).total.item();
    const auto d = class_dice(out[0], eval.labels);
    net->train(true);
    std::printf("%s validation loss %.4f, Dice ET %.3f  ED %.3f  NCR %.3f  (mean %.3f)\n", when, loss, d[0], d[1], d[2],
                (d[0] + d[1] + d[2]) / 3);
  };
  evaluate("before:");

  // The background loader: a new order each epoch from the seed, half of
  // each batch's positions drawn from the training slices with tumour
  // (oversampling), every slice augmented (SPEC Table 1) from its
  // (seed, epoch, position) draw, in the workers or on the device.
  data::LoaderOptions lo;
  lo.batch_size = o.batch;
  lo.seed = o.seed;
  lo.tumour_fraction = 0.5;
  lo.augment_on = data::parse_augment_on(o.augment_on);
  lo.device = dev;
  lo.out_side = o.size;
  data::Loader loader(cache, train_slices, lo);
  const auto t0 = std::chrono::steady_clock::now();
  // On a GPU with AdamW the step is captured once as a CUDA Graph and
  // replayed (engine/step_graph.h); ce and tversky then are the graph's
  // static outputs, overwritten by each replay.
  const model::DeepSupervisionLoss loss_fn;  // class weights uploaded once
  auto* adamw = dynamic_cast<AdamW*>(opt.get());
  StepGraph graph(o.cuda_graph == "on" && adamw, [](const std::string& m) { std::printf("%s\n", m.c_str()); });
  Tensor ce, tversky;
  const StepGraph::Body body = [&](const Tensor& images, const Tensor& labels) {
    const model::LossTerms t = loss_fn(net->forward(images), labels);
    ce = t.ce[0];
    tversky = t.tversky[0];
    opt->zero_grad();
    backward(t.total);
    opt->step();
    return t.total.detach();
  };
  for (int step = 1; step <= o.steps; ++step) {
    opt->set_lr(sched.lr_at(step - 1));
    const data::Batch b = loader.next();
    const Tensor total = adamw ? graph.run(b.images, b.labels, *net, *adamw, body) : body(b.images, b.labels);
    if (step == 1 || step % 10 == 0 || step == o.steps)
      std::printf("step %4d  epoch %lld  lr %.2e  loss %.4f  (main: ce %.4f, tversky %.4f)\n", step,
                  static_cast<long long>(b.epoch), opt->lr(), total.item(), ce.item(), tversky.item());
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const data::LoaderStats ls = loader.stats();
  std::printf("trained %d steps in %.1f s (%.2f steps/s); waited for data %.1f ms per batch (%d loader worker%s, "
              "augmentation on the %s)\n",
              o.steps, secs, o.steps / secs, ls.mean_wait_ms(), loader.workers(), loader.workers() == 1 ? "" : "s",
              loader.augments_on_device() ? "device" : "CPU");
  evaluate("after: ");

  // The paper's metrics: fold 0's validation cases predicted in their
  // original geometry (NIfTI masks), Dice and HD95 per region.
  {
    const std::string pred_dir = (work / "predictions").string();
    prepare_prediction_folder(pred_dir, o.force);
    data::BratsOptions bo;
    const data::BratsDataset ds = data::discover_brats_cases(root, bo);
    for (const data::BratsCase& bc : ds.cases)
      if (std::find(fold.val.begin(), fold.val.end(), bc.id) != fold.val.end())
        predict_case_file(*net, po, bc, pred_dir, 16, dev);
    eval::EvaluateOptions ec;
    ec.pred = pred_dir;
    ec.gt = root;
    ec.cases = fold.val;
    ec.progress = nullptr;
    std::printf("validation cases in the original grid (%s):\n", pred_dir.c_str());
    std::fflush(stdout);
    eval::evaluate_and_report(ec);
  }
  if (!o.save.empty()) {
    // With what `lkaseg predict --model` needs: the network and the preprocessing.
    train::TrainConfig tc;
    tc.net = cfg;
    tc.batch = o.batch;
    tc.adamw.lr = o.lr;
    tc.seed = o.seed;
    const std::map<std::string, std::string> meta{{"format", "lkaseg-weights-1"},
                                                  {"lkaseg.train_config", tc.to_json()},
                                                  {"lkaseg.preprocess", train::preprocess_to_json(po)}};
    if (adamw) {
      TrainState st;
      st.step = o.steps;
      st.lr = opt->lr();
      st.schedule = sched;
      save_checkpoint(o.save, *net, *adamw, st, meta);
    } else {
      save_state_dict(o.save, *net, meta);
    }
    std::printf("saved %s\n", o.save.c_str());
  }
  return 0;
}

}  // namespace

Subcommand add_demo(CLI::App& app) {
  auto o = std::make_shared<DemoOptions>();
  CLI::App* d = app.add_subcommand(
      "demo", "train a network on BraTS-layout cases (synthetic by default) with the paper's loss; report Dice");
  d->add_option("--net", o->net, "resse_lka_unet, unet or attention_unet")
      ->check(CLI::IsMember({"resse_lka_unet", "unet", "attention_unet"}))
      ->capture_default_str();
  d->add_option("--widths", o->widths, "channels per level (deep supervision with 4 or more)")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  d->add_option("--steps", o->steps, "training steps")->check(CLI::Range(1, 1000000))->capture_default_str();
  d->add_option("--batch", o->batch, "batch size")->check(CLI::Range(1, 4096))->capture_default_str();
  d->add_option("--size", o->size, "image side")->check(CLI::Range(4, 4096))->capture_default_str();
  d->add_option("--save", o->save,
                "write the weights (a state_dict that `lkaseg predict --model` takes) and <save>.state (the "
                "optimiser) here at the end; checked before training");
  d->add_option("--data", o->data, "a folder of BraTS cases, only read (default: generate --cases synthetic ones)");
  d->add_option("--work", o->work, "folder for generated cases, cache, split and predictions (default: <tmp>/lkaseg-demo-<seed>)");
  d->add_flag("--force", o->force, "use a --work folder that holds other files (never over them)");
  d->add_option("--cases", o->cases, "synthetic cases to generate (the last is held out)")
      ->check(CLI::Range(2, 10000))
      ->capture_default_str();
  d->add_option("--lr", o->lr, "learning rate")->check(positive_number())->capture_default_str();
  add_seed_option(d, o->seed, "random seed");
  d->add_option("--optimizer", o->optimizer, "sgd or adamw")->check(CLI::IsMember({"sgd", "adamw"}))->capture_default_str();
  d->add_option("--device", o->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  d->add_flag("--fast-nondeterministic", o->fast_nondeterministic, kFastNondeterministicHelp);
  d->add_flag("--tf32", o->tf32, kTf32Help);
  d->add_option("--cuda-graph", o->cuda_graph, kCudaGraphHelp)->check(CLI::IsMember({"on", "off"}))->capture_default_str();
  d->add_option("--augment-on", o->augment_on, "where augmentation runs: auto (the device on a GPU), cpu (loader workers) or device")
      ->check(CLI::IsMember({"auto", "cpu", "device"}))
      ->capture_default_str();
  return {d, [o] { return cmd_demo(*o); }};
}

}  // namespace lk::cli
