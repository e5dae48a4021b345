// lkaseg cv: every fold of the paper's protocol (resumable; data-parallel
// under mpirun / srun, or several folds at once with --parallel-folds /
// --devices), the validation summary over folds, then (rank 0 alone) in the
// original grid of each case:
//   1. per fold, the checkpoint: with --select auto (the default) both the
//      best-validation and the last checkpoint predict the fold's validation
//      cases (RUN/fold_k/val_best/, val_last/), and the one with the better
//      score over all of them (eval/postprocess_select.h: Dice and HD95 of
//      the five regions, a region the ground truth lacks counted with
//      BraTS's values: a false island there is an error of one checkpoint
//      against the other) is kept, ties going to the last (nnU-Net predicts
//      with its final checkpoint); recorded in fold_k/selected.json, which
//      `predict --run` follows;
//   2. every selected case as predicted by the fold that held it out
//      (RUN/predictions/), Dice/HD95 (RUN/evaluation.csv, .json) and the
//      paper's Table 3 over folds (RUN/table3.json);
//   3. the post-processing chosen on those predictions
//      (RUN/postprocessing.json), the post-processed predictions
//      (RUN/predictions_postprocessed/) and the before/after table;
//      --pp-convention says how a region the ground truth lacks counts (and
//      with spec, the default, the rules never empty a label the prediction
//      holds: train/postprocess.h keep_labels), and rerunning a finished cv
//      with another value chooses again without training or predicting;
//   4. RUN/cv_summary.json completed with the choices and before/after.
// Why not only the best validation epoch: it is picked on the slice grid by
// Dice alone, over a fold's few validation cases, and on the shared real
// cases it lost to the final epoch on unseen cases (issue 15: WT 71.5 vs
// 75.2, HD95 52 vs 24 mm); the original-grid comparison adds HD95, which the
// false-positive islands drive, and every validation voxel of the fold.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/nifti_read.h"
#include "eval/metrics.h"
#include "eval/postprocess_select.h"
#include "tools/cli/commands.h"
#include "eval/evaluate.h"
#include "tools/cli/run.h"
#include "util/atomic_file.h"
#include "util/interrupt.h"
#include "util/progress.h"

namespace lk::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct CvOptions {
  RunOptions run;
  std::string select = "auto";  // auto, best, last
  std::string pp_convention = "spec";  // the post-processing's score: spec or brats (eval/postprocess_select.h)
};

const data::BratsCase& case_of(const data::BratsDataset& ds, const std::string& id, const std::string& root) {
  const auto it = std::find_if(ds.cases.begin(), ds.cases.end(), [&](const data::BratsCase& c) { return c.id == id; });
  if (it == ds.cases.end()) throw std::invalid_argument(root + ": case " + id + " of the split is not there");
  return *it;
}

// The cases `ids` predicted with `weights` into `dir` (a prediction newer
// than the weights is kept). False when a stop was asked for (Ctrl-C).
bool predict_into(const std::string& weights, const std::vector<std::string>& ids, const data::BratsDataset& ds,
                  const std::string& root, const std::string& dir, bool force, int64_t batch, Device dev,
                  Progress& progress) {
  prepare_prediction_folder(dir, force);
  std::unique_ptr<LoadedModel> m;
  for (const std::string& id : ids) {
    const fs::path out = fs::path(dir) / (id + ".nii.gz");
    if (!(fs::exists(out) && fs::last_write_time(out) >= fs::last_write_time(weights))) {
      if (!m) m = std::make_unique<LoadedModel>(load_model(weights, dev));
      predict_case_file(*m->net, m->preprocess, case_of(ds, id, root), dir, batch, dev);
    }
    progress.advance();
    if (stop_requested()) return false;
  }
  return true;
}

struct Candidate {
  std::string which;  // best, last
  std::string weights;
  int64_t epoch = 0;
  eval::Score score;
};

std::string score_str(const eval::Score& s) {
  char b[96];
  std::snprintf(b, sizeof b, "Dice %.2f %%, HD95 %.2f mm", 100 * s.dice, s.hd95);
  return b;
}

// Step 1 for fold k: the chosen checkpoint, its validation predictions
// copied to pred_dir; nullopt when a stop was asked for.
std::optional<json> choose_checkpoint(const CvOptions& co, const data::Fold& f, int k, const data::BratsDataset& ds,
                       const std::string& pred_dir, Device dev, Progress& progress) {
  const RunOptions& o = co.run;
  const fs::path fold = fs::path(o.out) / ("fold_" + std::to_string(k));
  std::vector<Candidate> cands;
  for (const char* which : {"best", "last"}) {
    if (co.select != "auto" && co.select != which) continue;
    train::CheckpointInfo info;
    try {
      info = train::resolve_checkpoint(fold.string(), which);
    } catch (const std::invalid_argument&) {
      continue;  // no such checkpoint
    }
    if (!cands.empty() && cands.front().epoch == info.epoch) continue;  // the best is the last epoch: one candidate
    cands.push_back({which, info.weights, info.epoch, {}});
  }
  if (cands.empty()) throw std::runtime_error(fold.string() + ": no checkpoint to predict with");
  std::string how;
  for (Candidate& c : cands) {
    const std::string dir = (fold / ("val_" + c.which)).string();
    if (!predict_into(c.weights, f.val, ds, o.data, dir, o.force, o.batch * 2, dev, progress)) return std::nullopt;
    if (cands.size() < 2) continue;
    eval::EvaluateOptions e;
    e.pred = dir;
    e.gt = o.data;
    e.cases = f.val;
    e.progress = nullptr;
    e.report = nullptr;
    c.score = eval::score_cases(eval::evaluate_folders(e).cases, eval::PpConvention::Brats);
  }
  size_t pick = 0;
  if (cands.size() == 2) {
    pick = cands[0].score.combined() > cands[1].score.combined() ? 0 : 1;
    how = "the better of best (epoch " + std::to_string(cands[0].epoch) + ": " + score_str(cands[0].score) +
          ") and last (epoch " + std::to_string(cands[1].epoch) + ": " + score_str(cands[1].score) +
          ") by Dice - HD95/373.13 over the fold's " + std::to_string(f.val.size()) +
          " validation cases in the original grid (5 regions)";
  } else if (co.select == "auto") {
    how = "best and last are the same epoch";
  } else {
    how = "--select " + co.select;
  }
  const Candidate& c = cands[pick];
  train::write_checkpoint_choice(fold.string(), {c.which, c.epoch, how});
  for (const std::string& id : f.val)
    fs::copy_file(fold / ("val_" + c.which) / (id + ".nii.gz"), fs::path(pred_dir) / (id + ".nii.gz"),
                  fs::copy_options::overwrite_existing);
  std::printf("fold %d: %s (%s, epoch %lld): %s\n", k, c.which.c_str(), c.weights.c_str(),
              static_cast<long long>(c.epoch), how.c_str());
  json j = {{"fold", k}, {"checkpoint", c.which}, {"weights", c.weights}, {"epoch", c.epoch}, {"how", how}};
  if (cands.size() == 2)
    for (const Candidate& x : cands)
      j["candidates"].push_back({{"checkpoint", x.which}, {"epoch", x.epoch},
                                 {"dice", x.score.dice}, {"hd95_mm", x.score.hd95}, {"combined", x.score.combined()}});
  return j;
}

// Step 3: post-processing chosen on RUN/predictions; returns the summary JSON.
json choose_postprocessing(const CvOptions& co, const Prepared& p, const data::BratsDataset& ds,
                           const std::string& pred_dir) {
  const RunOptions& o = co.run;
  eval::PpSelectOptions so;
  so.convention = co.pp_convention == "brats" ? eval::PpConvention::Brats : eval::PpConvention::Spec;
  const char* name = eval::pp_convention_name(so.convention);
  const char* convention = so.convention == eval::PpConvention::Spec
                               ? "a region the ground truth lacks left out, as evaluate reports; no label the "
                                 "prediction holds is emptied"
                               : "a region the ground truth lacks counted, BraTS conventions";
  std::printf("\nchoosing the post-processing on the %zu cross-validation predictions (--pp-convention %s: %s; no "
              "region's Dice may fall by more than %g point(s), nor its HD95 rise by more than %g mm)\n",
              p.split.selected.size(), name, convention, 100 * so.region_dice_tol,
              so.region_hd95_tol_mm);
  std::fflush(stdout);
  std::vector<eval::PpCase> cases;
  for (const std::string& id : p.split.selected) {
    const data::BratsCase& bc = case_of(ds, id, o.data);
    const std::string pf = (fs::path(pred_dir) / (id + ".nii.gz")).string();
    const data::Volume pred = data::read_nifti(pf), gt = data::read_nifti(bc.seg);
    cases.push_back(eval::make_pp_case(id, eval::to_brats_labels(pred.data, bc.naming, pf),
                                       eval::to_brats_labels(gt.data, bc.naming, bc.seg), gt.geom));
  }
  const eval::PpSelection sel = eval::select_postprocessing(cases, so);
  const std::string pp_path = (fs::path(o.out) / "postprocessing.json").string();
  write_file_atomically(pp_path, train::postprocessing_json(sel.chosen, sel.report_json()));
  eval::Score prev = sel.before;  // each kept rule against the rules kept before it
  for (const eval::PpTrial& t : sel.tried)
    if (t.kept) {
      std::printf("  kept %s: Dice %.2f -> %.2f %%, HD95 %.2f -> %.2f mm (mean over the regions, --pp-convention %s)\n",
                  t.rule.str().c_str(), 100 * prev.dice, 100 * t.score.dice, prev.hd95, t.score.hd95, name);
      prev = t.score;
    }
  if (sel.chosen.rules.empty()) std::printf("  no rule improved the cross-validated Dice/HD95: none kept\n");
  std::printf("wrote %s (%zu rule(s) of %zu tried)\n", pp_path.c_str(), sel.chosen.rules.size(), sel.tried.size());

  // The post-processed predictions, for `lkaseg evaluate` and figures.
  const fs::path pp_dir = fs::path(o.out) / "predictions_postprocessed";
  fs::create_directories(pp_dir);
  for (const std::string& id : p.split.selected) {
    const data::BratsCase& bc = case_of(ds, id, o.data);
    const std::string pf = (fs::path(pred_dir) / (id + ".nii.gz")).string();
    const data::Volume v = data::read_nifti(pf);
    std::vector<uint8_t> labels = eval::to_brats_labels(v.data, bc.naming, pf);
    train::apply_postprocessing(labels, v.geom.dims, v.geom.spacing, sel.chosen);
    train::write_case_labels((pp_dir / (id + ".nii.gz")).string(), v.geom, std::move(labels), bc.naming,
                             "lkaseg prediction, post-processed");
  }

  const auto before = eval::aggregate(sel.before_cases), after = eval::aggregate(sel.after_cases);
  std::printf("\npost-processing on the cross-validation predictions (mean over cases, n/a left out):\n");
  std::printf("%-5s %-24s %-24s\n", "", "Dice % before -> after", "HD95 mm before -> after");
  json table = json::object();
  for (eval::Region r : eval::kRegions) {
    const eval::RegionSummary &b = before[static_cast<size_t>(r)], &a = after[static_cast<size_t>(r)];
    char d[64], h[64];
    std::snprintf(d, sizeof d, "%6.2f -> %6.2f", 100 * b.dice_mean, 100 * a.dice_mean);
    std::snprintf(h, sizeof h, "%6.2f -> %6.2f", b.hd95_mean, a.hd95_mean);
    std::printf("%-5s %-24s %-24s\n", eval::region_name(r), d, h);
    const auto num = [](double x) { return std::isfinite(x) ? json(x) : json(nullptr); };
    table[eval::region_name(r)] = {{"dice_before", num(b.dice_mean)}, {"dice_after", num(a.dice_mean)},
                                   {"hd95_before", num(b.hd95_mean)}, {"hd95_after", num(a.hd95_mean)}};
  }
  std::printf("wrote %s\n", pp_dir.string().c_str());
  return {{"file", pp_path},
          {"convention", name},
          {"rules", json::parse(train::postprocessing_json(sel.chosen)).at("rules")},
          {"regions", table}};
}

int evaluate_cv(const CvOptions& co, const Prepared& p, Device dev) {
  const RunOptions& o = co.run;
  const std::string pred_dir = (fs::path(o.out) / "predictions").string();
  prepare_prediction_folder(pred_dir, o.force);
  data::BratsOptions bo;
  bo.skip_bad = o.skip_bad;
  bo.only = p.split.selected;
  const data::BratsDataset ds = data::discover_brats_cases(o.data, bo);
  std::printf("\ncheckpoint of each fold (--select %s), its validation cases predicted in the original geometry -> %s\n",
              co.select.c_str(), pred_dir.c_str());
  std::fflush(stdout);
  json choices = json::array();
  {
    Progress progress("predict", static_cast<int64_t>(p.split.selected.size()) * (co.select == "auto" ? 2 : 1), "cases");
    const StopScope stoppable("the current case");
    for (size_t k = 0; k < p.split.folds.size(); ++k) {
      std::optional<json> c = choose_checkpoint(co, p.split.folds[k], static_cast<int>(k), ds, pred_dir, dev, progress);
      if (!c) {
        progress.finish(false);
        std::printf("stopped after %lld predictions; run the same command again to go on\n",
                    static_cast<long long>(progress.done()));
        return 130;
      }
      choices.push_back(*c);
    }
    progress.finish();
  }
  eval::EvaluateOptions e;
  e.pred = pred_dir;
  e.gt = o.data;
  e.cases = p.split.selected;
  e.out = (fs::path(o.out) / "evaluation.csv").string();
  e.json = (fs::path(o.out) / "evaluation.json").string();
  std::printf("\nDice and HD95 in the original voxel grid, over the %zu cases (each predicted by the fold that "
              "held it out):\n", p.split.selected.size());
  std::fflush(stdout);
  const eval::EvaluationResult er = eval::evaluate_and_report(e);

  // The paper's Table 3: per fold the mean over its validation cases, then
  // mean +- std over the folds (sample std), beside the paper's numbers.
  std::vector<std::array<eval::RegionSummary, eval::kNumRegions>> per_fold;
  for (const data::Fold& f : p.split.folds) {
    std::vector<eval::CaseMetrics> cs;
    for (const eval::CaseMetrics& c : er.cases)
      if (std::find(f.val.begin(), f.val.end(), c.id) != f.val.end()) cs.push_back(c);
    per_fold.push_back(eval::aggregate(cs));
  }
  struct Paper {
    eval::Region r;
    double dice, dice_sd, hd, hd_sd;
  };
  const Paper paper[] = {{eval::Region::NCR, 85.72, 3.81, 4.38, 1.34},
                         {eval::Region::ET, 82.56, 3.53, 6.08, 1.11},
                         {eval::Region::ED, 78.62, 4.58, 7.50, 1.62}};
  std::printf("\nover folds (mean +- sample std of the fold means; paper: 5 folds, 10%% of BraTS 2021):\n");
  std::printf("%-5s %-20s %-20s %-20s %-20s\n", "", "Dice % (ours)", "Dice % (paper)", "HD95 mm (ours)",
              "HD95 mm (paper)");
  json table = json::object();
  for (const Paper& pp : paper) {
    std::vector<double> d, h;
    for (const auto& f : per_fold) {
      const eval::RegionSummary& rs = f[static_cast<size_t>(pp.r)];
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
    std::printf("%-5s %-20s %-20s %-20s %-20s  (%zu folds)\n", eval::region_name(pp.r), a, b, c, e2, d.size());
    table[eval::region_name(pp.r)] = {{"dice_mean", dm}, {"dice_std", dsd}, {"hd95_mean", hm}, {"hd95_std", hs},
                                      {"folds", d.size()}};
  }
  const std::string path = (fs::path(o.out) / "table3.json").string();
  write_file_atomically(path, table.dump(2) + "\n");
  std::printf("wrote %s\n", path.c_str());

  const json pp = choose_postprocessing(co, p, ds, pred_dir);

  // cv_summary.json (train_folds wrote the validation part) gets the choices.
  const fs::path summary_path = fs::path(o.out) / "cv_summary.json";
  json summary = json::object();
  if (fs::is_regular_file(summary_path)) {
    std::ifstream in(summary_path);
    std::stringstream ss;
    ss << in.rdbuf();
    summary = json::parse(ss.str(), nullptr, false);
    if (summary.is_discarded()) summary = json::object();
  }
  summary["checkpoints"] = choices;
  summary["postprocessing"] = pp;
  write_file_atomically(summary_path.string(), summary.dump(2) + "\n");
  std::printf("wrote %s\n", summary_path.string().c_str());
  return 0;
}

}  // namespace

Subcommand add_cv(CLI::App& app) {
  auto o = std::make_shared<CvOptions>();
  CLI::App* cv = app.add_subcommand("cv", "train every fold (resumable), summarise the validation Dice, choose each "
                                          "fold's checkpoint and the post-processing, evaluate in the original grid");
  add_run_options(cv, o->run, false);
  cv->add_flag("--no-eval", o->run.no_eval,
               "skip predicting the validation cases and evaluating them in the original grid (Dice, HD95), the "
               "checkpoint choice and the post-processing");
  cv->add_option("--select", o->select,
                 "each fold's checkpoint: auto (the better of best and last on the fold's validation cases in the "
                 "original grid), best or last")
      ->check(CLI::IsMember({"auto", "best", "last"}))
      ->capture_default_str();
  cv->add_option("--pp-convention", o->pp_convention,
                 "how the post-processing choice counts a region the ground truth lacks: spec (left out, as "
                 "evaluate reports by default; the rules never empty a label the prediction holds) or brats "
                 "(counted: Dice 1 / HD95 0 when nothing is predicted, 0 / 373.13 mm otherwise, as evaluate "
                 "--include-empty); rerun a finished cv with it to choose again")
      ->check(CLI::IsMember({"spec", "brats"}))
      ->capture_default_str();
  cv->add_option("--parallel-folds", o->run.parallel_folds,
                 "train this many folds at once, one process each with its share of the cores")
      ->check(CLI::Range(1, 64));
  cv->add_option("--devices", o->run.devices, "train folds at once, one process per device listed (e.g. 0,1,2,3)")
      ->delimiter(',');
  return {cv, [o] {
            const RunOptions& ro = o->run;
            return run_on_ranks(ro, [&](Ranks& r) {
              check_precision(ro, r.device);
              const Prepared p = prepare_all(ro, r);
              install_stop_handlers();
              if (ro.parallel_folds > 0 || !ro.devices.empty())
                if (const int rc = train_folds_in_parallel(ro, p); rc != 0) return rc;
              if (const int rc = train_folds(ro, p, true, r.device, r.comm.get()); rc != 0) return rc;
              return ro.no_eval || !r.lead() ? 0 : evaluate_cv(*o, p, r.device);
            });
          }};
}

}  // namespace lk::cli
