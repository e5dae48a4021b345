// lkaseg train / cv / predict (see tools/commands.h).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/brats_cases.h"
#include "data/cli_evaluate.h"
#include "data/nifti_write.h"
#include "data/preprocess.h"
#include "data/slice_cache.h"
#include "data/splits.h"
#include "engine/atomic_file.h"
#include "engine/checkpoint.h"
#include "engine/progress.h"
#include "engine/safetensors.h"
#include "model/trainer.h"
#include "tools/commands.h"

namespace lk::tools {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int) {
  g_stop.store(true);
  // A second signal ends the process the default way.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

struct RunOptions {
  std::string data, out, split, cache;
  int fold = 0, folds = 5, threads = 0;
  double fraction = 0.1;
  bool skip_bad = false;
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
};

struct PredictOptions {
  std::string model, data, out, device = "auto";
  std::vector<std::string> cases;
  int64_t batch = 16;
  bool skip_bad = false;
};

RunOptions g_run;
PredictOptions g_pred;

void add_run_options(CLI::App* s, RunOptions& o, bool one_fold) {
  s->add_option("--data", o.data, "folder of BraTS case folders")->required()->check(CLI::ExistingDirectory);
  s->add_option("--out", o.out, "run folder (split.json, slices.lkcache, fold_<k>/)")->required();
  if (one_fold) s->add_option("--fold", o.fold, "the fold to train (0-based)")->check(CLI::Range(0, 99))->capture_default_str();
  s->add_option("--folds", o.folds, "number of folds")->check(CLI::Range(2, 100))->capture_default_str();
  s->add_option("--fraction", o.fraction, "fraction of the cases selected (SPEC: 10%)")
      ->check(CLI::Range(1e-9, 1.0))
      ->capture_default_str();
  s->add_option("--split", o.split, "split JSON (default RUN/split.json; written when absent, honoured when present)");
  s->add_option("--cache", o.cache, "slice cache (default RUN/slices.lkcache)");
  s->add_option("--threads", o.threads, "preprocessing workers (0: all cores)")->check(CLI::Range(0, 4096));
  s->add_flag("--skip-bad", o.skip_bad, "skip bad cases (listed) instead of failing");
  s->add_option("--size", o.size, "slice side")->check(CLI::Range(16, 4096))->capture_default_str();
  s->add_flag("--clahe", o.clahe, "CLAHE in preprocessing (clip 2, 8x8 tiles)");
  s->add_option("--net", o.net, "resse_lka_unet, unet or attention_unet")
      ->check(CLI::IsMember({"resse_lka_unet", "unet", "attention_unet"}))
      ->capture_default_str();
  s->add_option("--widths", o.widths, "channels per level (SPEC: 32 64 128 256 512)");
  s->add_option("--lka-dilation", o.lka_dilation, "dilation of the LKA's 7x7 (1 as written, 3 as VAN)")
      ->check(CLI::Range(1, 16));
  s->add_option("--epochs", o.epochs, "epochs")->check(CLI::Range(1, 100000))->capture_default_str();
  s->add_option("--batch", o.batch, "batch size")->check(CLI::Range(1, 4096))->capture_default_str();
  s->add_option("--lr", o.lr, "AdamW learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  s->add_option("--weight-decay", o.weight_decay, "AdamW weight decay")->check(CLI::Range(0.0, 10.0));
  s->add_option("--warmup-epochs", o.warmup_epochs, "linear warmup epochs")->check(CLI::Range(0, 100000));
  s->add_option("--val-every", o.val_every, "validate every N epochs (and after the last)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  s->add_option("--steps-per-epoch", o.steps_per_epoch, "steps per epoch (0: one pass over the training slices)")
      ->check(CLI::Range(0, 100000000));
  s->add_option("--oversample", o.oversample, "probability of a tumour slice at each batch position (0: none)")
      ->check(CLI::Range(0.0, 1.0));
  s->add_option("--seed", o.seed, "seed of the split, the initialisation, the order and the augmentation");
  s->add_option("--device", o.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  s->add_option("--augment-on", o.augment_on, "auto (the device on a GPU), cpu or device")
      ->check(CLI::IsMember({"auto", "cpu", "device"}));
  s->add_option("--workers", o.workers, "loader worker threads (0: automatic)")->check(CLI::Range(0, 256));
}

model::TrainConfig train_config(const RunOptions& o, Device dev) {
  model::TrainConfig c;
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
  c.seed = o.seed;
  c.augment_on = data::parse_augment_on(o.augment_on);
  c.workers = o.workers;
  c.device = dev;
  const int64_t stride = int64_t{1} << (o.widths.size() - 1);
  if (o.widths.empty() || o.size % stride != 0)
    throw std::invalid_argument("--size " + std::to_string(o.size) + " must be divisible by 2^(levels - 1) = " +
                                std::to_string(stride) + " for " + std::to_string(o.widths.size()) + " levels");
  return c;
}

// The split (made once, then honoured) and the cache of the selected cases.
struct Prepared {
  data::Split split;
  data::SliceCache cache;
};

Prepared prepare(const RunOptions& o) {
  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec || !fs::is_directory(o.out)) throw std::runtime_error(o.out + ": cannot create the run folder");
  data::BratsOptions bo;
  bo.skip_bad = o.skip_bad;
  const data::BratsDataset ds = data::discover_brats_cases(o.data, bo);
  std::vector<std::string> ids;
  for (const data::BratsCase& c : ds.cases) ids.push_back(c.id);
  const std::string split_path = o.split.empty() ? (fs::path(o.out) / "split.json").string() : o.split;
  Prepared p;
  if (fs::exists(split_path)) {
    p.split = data::read_split_json(split_path, ids);
    std::printf("split: %s (%zu cases selected, %zu folds)\n", split_path.c_str(), p.split.selected.size(),
                p.split.folds.size());
  } else {
    p.split = data::make_split(ids, o.fraction, o.seed, o.folds);
    data::write_split_json(split_path, p.split);
    std::printf("split: %zu of %zu cases (fraction %g, seed %llu) in %zu folds -> %s\n", p.split.selected.size(),
                ids.size(), o.fraction, static_cast<unsigned long long>(o.seed), p.split.folds.size(),
                split_path.c_str());
  }
  std::fflush(stdout);  // before the build's progress lines on stderr
  data::PreprocessOptions po;
  po.size = o.size;
  po.clahe = o.clahe;
  data::CacheBuildOptions b;
  b.threads = o.threads;
  b.skip_bad = o.skip_bad;
  b.only = p.split.selected;
  b.log = [](const std::string& m) { std::printf("  %s\n", m.c_str()); };
  data::CacheBuildSummary s;
  const std::string cache_path = o.cache.empty() ? (fs::path(o.out) / "slices.lkcache").string() : o.cache;
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

struct FoldOutcome {
  model::TrainResult result;
  std::string dir;
};

FoldOutcome run_fold(const RunOptions& o, const Prepared& p, int k, Device dev) {
  if (k >= static_cast<int>(p.split.folds.size()))
    throw std::invalid_argument("--fold " + std::to_string(k) + ": the split has " +
                                std::to_string(p.split.folds.size()) + " folds");
  const data::Fold& f = p.split.folds[static_cast<size_t>(k)];
  FoldOutcome out;
  out.dir = (fs::path(o.out) / ("fold_" + std::to_string(k))).string();
  std::printf("fold %d: %zu training cases, %zu validation cases -> %s\n", k, f.train.size(), f.val.size(),
              out.dir.c_str());
  std::fflush(stdout);
  model::TrainHooks h;
  h.stop = &g_stop;
  h.log = [](const std::string& m) {
    std::printf("  %s\n", m.c_str());
    std::fflush(stdout);
  };
  out.result = model::train_fold(train_config(o, dev), p.cache, f.train, f.val, out.dir, h);
  return out;
}

std::string pm(double mean, double sd, double scale) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%6.2f +- %5.2f", mean * scale, sd * scale);
  return buf;
}

// A trained model with its preprocessing, from a best.safetensors.
struct LoadedModel {
  model::TrainConfig config;
  data::PreprocessOptions preprocess;
  std::unique_ptr<model::SegNet> net;
};

LoadedModel load_model(const std::string& path, Device dev) {
  if (!fs::is_regular_file(path)) throw std::invalid_argument(path + ": the model is not a file");
  const std::map<std::string, std::string> meta = load_safetensors(path).metadata;
  if (!meta.count("lkaseg.train_config") || !meta.count("lkaseg.preprocess"))
    throw std::invalid_argument(path + ": no lkaseg training metadata (use a best.safetensors written by "
                                "`lkaseg train`/`cv`)");
  LoadedModel m;
  m.config = model::TrainConfig::from_json(meta.at("lkaseg.train_config"));
  m.preprocess = model::preprocess_from_json(meta.at("lkaseg.preprocess"));
  m.net = std::make_unique<model::SegNet>(m.config.net);
  load_state_dict(path, *m.net);
  m.net->to_device(dev);
  return m;
}


// After cv: every selected case predicted by the fold that validated it, in
// its original geometry (RUN/predictions/<id>.nii.gz; a prediction newer
// than its model is kept), then Dice/HD95 over the cases
// (RUN/evaluation.csv, .json, the Table 3 layout on stdout).
int evaluate_cv(const RunOptions& o, const Prepared& p, Device dev) {
  const std::string pred_dir = (fs::path(o.out) / "predictions").string();
  std::error_code ec;
  fs::create_directories(pred_dir, ec);
  if (ec) throw std::runtime_error(pred_dir + ": cannot create the folder (" + ec.message() + ")");
  data::BratsOptions bo;
  bo.skip_bad = o.skip_bad;
  const data::BratsDataset ds = data::discover_brats_cases(o.data, bo);
  std::printf("\npredicting each fold's validation cases in the original geometry -> %s\n", pred_dir.c_str());
  std::fflush(stdout);
  Progress progress("predict", static_cast<int64_t>(p.split.selected.size()), "cases");
  for (size_t k = 0; k < p.split.folds.size(); ++k) {
    const fs::path model_path = fs::path(o.out) / ("fold_" + std::to_string(k)) / "best.safetensors";
    std::unique_ptr<LoadedModel> m;
    for (const std::string& id : p.split.folds[k].val) {
      const fs::path out = fs::path(pred_dir) / (id + ".nii.gz");
      if (!(fs::exists(out) && fs::last_write_time(out) >= fs::last_write_time(model_path))) {
        if (!m) m = std::make_unique<LoadedModel>(load_model(model_path.string(), dev));
        const auto it = std::find_if(ds.cases.begin(), ds.cases.end(), [&](const data::BratsCase& c) { return c.id == id; });
        if (it == ds.cases.end()) throw std::invalid_argument(o.data + ": case " + id + " of the split is not there");
        predict_case_file(*m->net, m->preprocess, *it, pred_dir, o.batch * 2, dev);
      }
      progress.advance();
    }
  }
  progress.finish();
  data::EvaluateCommand e;
  e.pred = pred_dir;
  e.gt = o.data;
  e.cases = p.split.selected;
  e.out = (fs::path(o.out) / "evaluation.csv").string();
  e.json = (fs::path(o.out) / "evaluation.json").string();
  std::printf("\nDice and HD95 in the original voxel grid, over the %zu cases (each predicted by the fold that "
              "held it out):\n", p.split.selected.size());
  std::fflush(stdout);
  data::EvaluationResult er;
  if (const int rc = data::run_evaluate(e, &er); rc != 0) return rc;

  // The paper's Table 3: per fold the mean over its validation cases, then
  // mean +- std over the folds (sample std), beside the paper's numbers.
  std::vector<std::array<data::RegionSummary, data::kNumRegions>> per_fold;
  for (const data::Fold& f : p.split.folds) {
    std::vector<data::CaseMetrics> cs;
    for (const data::CaseMetrics& c : er.cases)
      if (std::find(f.val.begin(), f.val.end(), c.id) != f.val.end()) cs.push_back(c);
    per_fold.push_back(data::aggregate(cs));
  }
  struct Paper {
    data::Region r;
    double dice, dice_sd, hd, hd_sd;
  };
  const Paper paper[] = {{data::Region::NCR, 85.72, 3.81, 4.38, 1.34},
                         {data::Region::ET, 82.56, 3.53, 6.08, 1.11},
                         {data::Region::ED, 78.62, 4.58, 7.50, 1.62}};
  std::printf("\nover folds (mean +- sample std of the fold means; paper: 5 folds, 10%% of BraTS 2021):\n");
  std::printf("%-5s %-20s %-20s %-20s %-20s\n", "", "Dice % (ours)", "Dice % (paper)", "HD95 mm (ours)",
              "HD95 mm (paper)");
  json table = json::object();
  for (const Paper& pp : paper) {
    std::vector<double> d, h;
    for (const auto& f : per_fold) {
      const data::RegionSummary& rs = f[static_cast<size_t>(pp.r)];
      if (rs.n > 0 && std::isfinite(rs.dice_mean)) d.push_back(rs.dice_mean * 100), h.push_back(rs.hd95_mean);
    }
    const auto ms = [](const std::vector<double>& v) {
      double m = 0, s = 0;
      for (double x : v) m += x / static_cast<double>(v.size());
      for (double x : v) s += (x - m) * (x - m);
      return std::pair{m, v.size() > 1 ? std::sqrt(s / static_cast<double>(v.size() - 1)) : 0.0};
    };
    const auto [dm, dsd] = ms(d);
    const auto [hm, hs] = ms(h);
    char a[32], b[32], c[32], e2[32];
    std::snprintf(a, sizeof a, "%.2f +- %.2f", dm, dsd);
    std::snprintf(b, sizeof b, "%.2f +- %.2f", pp.dice, pp.dice_sd);
    std::snprintf(c, sizeof c, "%.2f +- %.2f", hm, hs);
    std::snprintf(e2, sizeof e2, "%.2f +- %.2f", pp.hd, pp.hd_sd);
    std::printf("%-5s %-20s %-20s %-20s %-20s  (%zu folds)\n", data::region_name(pp.r), a, b, c, e2, d.size());
    table[data::region_name(pp.r)] = {{"dice_mean", dm}, {"dice_std", dsd}, {"hd95_mean", hm}, {"hd95_std", hs},
                                      {"folds", d.size()}};
  }
  const std::string path = (fs::path(o.out) / "table3.json").string();
  write_file_atomically(path, table.dump(2) + "\n");
  std::printf("wrote %s\n", path.c_str());
  return 0;
}

int cmd_train(const RunOptions& o, bool all_folds) {
  const Device dev = resolve_device(o.device);
  const Prepared p = prepare(o);
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::vector<FoldOutcome> done;
  const int first = all_folds ? 0 : o.fold;
  const int last = all_folds ? static_cast<int>(p.split.folds.size()) - 1 : o.fold;
  for (int k = first; k <= last; ++k) {
    done.push_back(run_fold(o, p, k, dev));
    if (done.back().result.stopped) {
      std::printf("stopped: run the same command again to resume\n");
      return 130;
    }
  }
  // Best validation per fold, and (cv) the mean +- sample std over folds.
  json folds = json::array();
  std::vector<std::array<double, 4>> rows;  // NCR, ET, ED, mean
  for (size_t i = 0; i < done.size(); ++i) {
    const model::TrainResult& r = done[i].result;
    const auto best = std::find_if(r.log.begin(), r.log.end(),
                                   [&](const model::EpochLog& e) { return e.epoch == r.best_epoch && e.val; });
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
    write_file_atomically(path, summary.dump(2) + "\n");
    std::printf("wrote %s\n", path.c_str());
  }
  if (all_folds && !o.no_eval) return evaluate_cv(o, p, dev);
  return 0;
}

int cmd_predict(const PredictOptions& o) {
  const Device dev = resolve_device(o.device);
  LoadedModel m = load_model(o.model, dev);

  data::BratsOptions bo;
  bo.skip_bad = o.skip_bad;
  bo.require_seg = false;
  data::BratsDataset ds = data::discover_brats_cases(o.data, bo);
  if (!o.cases.empty()) {
    std::vector<data::BratsCase> keep;
    for (const std::string& id : o.cases) {
      const auto it = std::find_if(ds.cases.begin(), ds.cases.end(), [&](const data::BratsCase& c) { return c.id == id; });
      if (it == ds.cases.end()) throw std::invalid_argument(o.data + ": case " + id + " (--cases) is not there");
      keep.push_back(*it);
    }
    ds.cases = keep;
  }
  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec || !fs::is_directory(o.out)) throw std::runtime_error(o.out + ": cannot create the output folder");
  Progress progress("predict", static_cast<int64_t>(ds.cases.size()), "cases");
  int failed = 0;
  for (const data::BratsCase& bc : ds.cases) {
    try {
      predict_case_file(*m.net, m.preprocess, bc, o.out, o.batch, dev);
    } catch (const std::exception& e) {
      if (!o.skip_bad) throw;
      ++failed;
      progress.note("skipping " + bc.id + ": " + e.what());
    }
    progress.advance();
  }
  progress.finish();
  std::printf("wrote %zu prediction(s) to %s%s\n", ds.cases.size() - static_cast<size_t>(failed), o.out.c_str(),
              failed ? (" (" + std::to_string(failed) + " case(s) skipped)").c_str() : "");
  return 0;
}

}  // namespace

// One case: load, preprocess as in training, predict, map back to the
// original grid, write <out>/<id>.nii.gz (BraTS labels of the case's naming).
void predict_case_file(model::SegNet& net, const data::PreprocessOptions& po, const data::BratsCase& bc,
                       const std::string& out_dir, int64_t batch, Device dev) {
  const data::BratsCaseData c = data::load_brats_case(bc);
  const data::PreprocessedCase p = data::preprocess_case(c, po);
  const std::vector<int32_t> cls = model::predict_classes(net, p.images.data(), p.slices(), p.size, batch, dev);
  std::vector<uint8_t> labels = data::map_back_labels(p, cls);
  if (bc.naming == data::BratsNaming::Brats2023)
    for (uint8_t& v : labels) v = v == 4 ? 3 : v;  // ET is 3 in the 2023 naming
  data::NiftiWriteOptions wo;
  wo.description = "lkaseg prediction";
  data::write_nifti((fs::path(out_dir) / (bc.id + ".nii.gz")).string(), c.geom, labels, wo);
}

TrainCommands add_train_commands(CLI::App& app) {
  TrainCommands t;
  t.train = app.add_subcommand("train", "train one fold with the paper's protocol (resumable)");
  add_run_options(t.train, g_run, true);
  t.cv = app.add_subcommand("cv", "train every fold (resumable) and summarise the validation Dice");
  add_run_options(t.cv, g_run, false);
  t.cv->add_flag("--no-eval", g_run.no_eval,
                 "skip predicting the validation cases and evaluating them in the original grid (Dice, HD95)");
  t.predict = app.add_subcommand("predict", "segment BraTS cases with a trained model: NIfTI masks in the original geometry");
  t.predict->add_option("--model", g_pred.model, "a best.safetensors written by train/cv")->required();
  t.predict->add_option("--data", g_pred.data, "folder of BraTS case folders (segmentations not needed)")
      ->required()
      ->check(CLI::ExistingDirectory);
  t.predict->add_option("--out", g_pred.out, "output folder: <case id>.nii.gz per case")->required();
  t.predict->add_option("--cases", g_pred.cases, "only these case ids");
  t.predict->add_option("--batch", g_pred.batch, "slices per forward pass")->check(CLI::Range(1, 4096));
  t.predict->add_option("--device", g_pred.device, "auto, cpu, cuda or cuda:N");
  t.predict->add_flag("--skip-bad", g_pred.skip_bad, "skip cases that fail (listed) instead of stopping");
  return t;
}

int run_train_commands(const TrainCommands& t) {
  if (t.train && t.train->parsed()) return cmd_train(g_run, false);
  if (t.cv && t.cv->parsed()) return cmd_train(g_run, true);
  if (t.predict && t.predict->parsed()) return cmd_predict(g_pred);
  return -1;
}

}  // namespace lk::tools
